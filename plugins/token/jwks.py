"""Remote key sets: a ``jwks_uri``, or one found through OpenID Connect discovery, kept fresh.

Key rollover must never stop license delivery, so:

- the first fetch runs in the background once the loop is up; a token that
  arrives before it ends waits for that fetch instead of failing;
- the set is refreshed on its own schedule, honouring the endpoint's
  ``Cache-Control: max-age`` (less ``Age``) within ``min_interval`` and
  ``max_interval``;
- a token whose ``kid`` the set lacks triggers at most one fetch per
  ``unknown_kid_interval``; every request that needs keys while a fetch is
  under way shares that one fetch;
- a failed or timed-out fetch (or a document with no usable key) keeps the
  last good keys serving; it is logged, counted, and retried after
  ``retry_interval``, doubling up to ``interval``; while no fetch has ever
  succeeded, a token that needs the set is KEY_SOURCE_UNAVAILABLE (retryable),
  not TOKEN_KEY_UNKNOWN (:attr:`RemoteKeys.ever_loaded`);
- a successful fetch replaces the set, so a key the issuer removed stops
  verifying after the next refresh;
- a configuration reload keeps the last good set: the keys one pipeline
  fetched seed the next pipeline's source for the same issuer and URL
  (:class:`LastGoodKeys`), so a reload while the identity provider is down
  never loses them.

Every time decision reads the injected clock's ``monotonic()``, so tests drive
the schedule with a fake clock.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, ClassVar, Protocol

import aiohttp

from plugins.token import metrics
from plugins.token.config import IssuerConfig, check_key_url
from plugins.token.keys import UnusableKey, VerificationKey, jwks_entries, key_from_jwk
from proxy import KeySourceStatus

log = logging.getLogger("plugins.token.jwks")

#: How often (in real seconds) the refresh loop looks at the clock while waiting.
POLL_SECONDS = 1.0
_MAX_AGE = re.compile(r"(?:^|,)\s*max-age\s*=\s*\"?(\d+)\"?\s*(?:,|$)", re.IGNORECASE)
_NO_CACHE = re.compile(r"(?:^|,)\s*(no-cache|no-store)\s*(?:,|$)", re.IGNORECASE)


class MonotonicClock(Protocol):
    """The part of ``services.clock`` the refresher needs."""

    def monotonic(self) -> float:
        """Seconds on a clock that never goes back."""
        ...

    def time(self) -> float:
        """Seconds since the epoch."""
        ...


class FetchFailed(Exception):
    """A fetch that produced no key set; ``outcome`` labels the metric."""

    def __init__(self, outcome: str, detail: str) -> None:
        super().__init__(detail)
        self.outcome = outcome


def cache_lifetime(headers: Mapping[str, str], default: float, low: float, high: float) -> float:
    """Seconds a response may be reused: ``max-age`` less ``Age`` (``no-cache``/``no-store``:
    none), else ``default``; always within ``[low, high]``."""
    control = headers.get("Cache-Control", "")
    seconds = default
    if _NO_CACHE.search(control):
        seconds = 0.0
    else:
        match = _MAX_AGE.search(control)
        if match:
            seconds = float(match[1])
            age = headers.get("Age", "").strip()
            if age.isdigit():
                seconds -= float(age)
    return min(max(seconds, low), high)


@dataclass(frozen=True, slots=True)
class KeySetSnapshot:
    """A key set as last fetched: its JWK entries, and the keys parsed from them for
    ``algorithms`` (reused as they are when a new source accepts the same algorithms)."""

    algorithms: tuple[str, ...]
    entries: tuple[Any, ...]
    parsed: Mapping[str, VerificationKey | None]


class LastGoodKeys:
    """The process's last good key set per ``(issuer, key-set URL)``, kept while a source
    for it runs (as :meth:`proxy.state.MemoryStore.shared` keeps state).

    A reload builds the new pipeline while the old one serves, so the new
    pipeline's source finds what the old one fetched and starts with it.
    """

    _snapshots: ClassVar[dict[tuple[str, str], KeySetSnapshot]] = {}
    _users: ClassVar[dict[tuple[str, str], int]] = {}

    @classmethod
    def get(cls, key: tuple[str, str]) -> KeySetSnapshot | None:
        """The last good set for ``key``, or None."""
        return cls._snapshots.get(key)

    @classmethod
    def put(cls, key: tuple[str, str], snapshot: KeySetSnapshot) -> None:
        """Record a freshly fetched set."""
        cls._snapshots[key] = snapshot

    @classmethod
    def acquire(cls, key: tuple[str, str]) -> None:
        """A source for ``key`` started."""
        cls._users[key] = cls._users.get(key, 0) + 1

    @classmethod
    def release(cls, key: tuple[str, str]) -> None:
        """A source for ``key`` stopped; the set is forgotten when none runs any more."""
        users = cls._users.get(key, 0) - 1
        if users > 0:
            cls._users[key] = users
            return
        cls._users.pop(key, None)
        cls._snapshots.pop(key, None)


class RemoteKeys:
    """Keeps one issuer's remote key set fresh and hands each new set to ``install``.

    :param issuer: the issuer's configuration (``jwks_uri`` or ``openid_configuration``).
    :param clock: the time source (``services.clock``).
    :param install: receives the usable keys of each successful fetch.
    """

    def __init__(
        self,
        issuer: IssuerConfig,
        clock: MonotonicClock,
        install: Callable[[list[VerificationKey]], Any],
    ) -> None:
        assert issuer.remote_url is not None
        self.issuer = issuer.issuer
        self.url = issuer.remote_url
        self.discovery = issuer.openid_configuration is not None
        self.settings = issuer.refresh
        self.algorithms = list(issuer.algorithms)
        self.clock = clock
        self.install = install
        #: Fetches started since creation (tests and logs read it).
        self.fetches = 0
        #: Successful fetches.
        self.successes = 0
        self._seeded = False
        #: Seconds since the epoch of the last good fetch.
        self.last_success: float | None = None
        self._session: aiohttp.ClientSession | None = None
        self._task: asyncio.Task[None] | None = None
        self._inflight: asyncio.Task[bool] | None = None
        self._wake = asyncio.Event()
        self._next_due = clock.monotonic()
        self._failures = 0
        self._last_unknown_kid: float | None = None
        self._parsed: dict[str, VerificationKey | None] = {}

    # -- lifecycle -------------------------------------------------------------------

    @property
    def registry_key(self) -> tuple[str, str]:
        """``(issuer, URL)``: what :class:`LastGoodKeys` files this source's sets under."""
        return self.issuer, self.url

    def seed_from_last_good(self) -> int:
        """Start with the set a running source for the same issuer and URL last fetched
        (the pipeline a reload replaces); the number of usable keys installed."""
        snapshot = LastGoodKeys.get(self.registry_key)
        if snapshot is None:
            return 0
        if snapshot.algorithms == tuple(self.algorithms):
            self._parsed = dict(snapshot.parsed)
        keys = self._usable_keys(list(snapshot.entries))
        if keys:
            self._seeded = True
            self.install(keys)
            log.info(
                "issuer %s: %d signing keys carried over from the previous configuration",
                self.issuer,
                len(keys),
            )
        return len(keys)

    def start(self, session: aiohttp.ClientSession) -> None:
        """Begin the background schedule; the first fetch starts at once and does not block."""
        self._session = session
        LastGoodKeys.acquire(self.registry_key)
        self._task = asyncio.create_task(self._run(), name=f"keys of {self.issuer}")

    async def stop(self) -> None:
        """Stop the schedule and any fetch under way."""
        for task in (self._task, self._inflight):
            if task is not None:
                task.cancel()
        for task in (self._task, self._inflight):
            if task is not None:
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        self._task = self._inflight = None
        if self._session is not None:
            LastGoodKeys.release(self.registry_key)
        self._session = None

    @property
    def running(self) -> bool:
        """True between :meth:`start` and :meth:`stop`."""
        return self._session is not None

    @property
    def ever_loaded(self) -> bool:
        """True once this source had a key set: fetched, or carried over from a reload. Until
        then its issuer's tokens can't be judged (KEY_SOURCE_UNAVAILABLE, not a bad token)."""
        return self.successes > 0 or self._seeded

    def next_refresh_in(self) -> float:
        """Seconds (on the injected clock) until the next scheduled fetch; 0 when due."""
        return max(0.0, self._next_due - self.clock.monotonic())

    def status(self, keys: int) -> KeySourceStatus:
        """What the admin API shows of this source, with ``keys`` usable keys installed."""
        return KeySourceStatus(
            issuer=self.issuer,
            url=self.url,
            keys=keys,
            fetches=self.fetches,
            successes=self.successes,
            last_success=self.last_success,
            next_refresh_in=self.next_refresh_in(),
            failing=self._failures > 0,
        )

    def wake(self) -> None:
        """Make the schedule look at the clock now (after a fake clock moved)."""
        self._wake.set()

    async def _run(self) -> None:
        trigger = "start"
        while True:
            remaining = self._next_due - self.clock.monotonic()
            if remaining > 0:
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(min(remaining, POLL_SECONDS)):
                        await self._wake.wait()
                self._wake.clear()
                continue
            await self.refresh(trigger)
            trigger = "schedule"

    # -- fetching ------------------------------------------------------------------------

    async def refresh(self, trigger: str = "schedule") -> bool:
        """Fetch now, or join the fetch under way; True when it produced a key set."""
        if self._session is None:
            return False
        task = self._inflight
        if task is None:
            task = self._inflight = asyncio.create_task(self._fetch_and_install(trigger))
            task.add_done_callback(self._fetch_done)
        # asyncio.wait, not shield: a caller that gives up never cancels the shared fetch,
        # and a fetch cancelled at shutdown is an answer (False), not the caller's error.
        await asyncio.wait((task,))
        return not task.cancelled() and task.result()

    def _fetch_done(self, task: asyncio.Task[bool]) -> None:
        if self._inflight is task:
            self._inflight = None

    async def refresh_for_unknown_kid(self) -> bool:
        """A token names a ``kid`` the set lacks: join the fetch under way, or fetch unless an
        unknown ``kid`` already caused one within ``unknown_kid_interval``. True when a fetch
        ended (look again), False when throttled or not running."""
        if self._session is None:
            return False
        if self._inflight is not None:
            return await self.refresh()
        now = self.clock.monotonic()
        last = self._last_unknown_kid
        if last is not None and now - last < self.settings.unknown_kid_interval:
            return False
        self._last_unknown_kid = now
        await self.refresh("unknown_kid")
        return True

    async def _fetch_and_install(self, trigger: str) -> bool:
        self.fetches += 1
        try:
            keys, lifetime, entries = await self._fetch()
        except FetchFailed as exc:
            self._failed(trigger, exc.outcome, str(exc))
            return False
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            log.exception("fetching the keys of issuer %s failed unexpectedly", self.issuer)
            self._failed(trigger, "error", type(exc).__name__)
            return False
        self._failures = 0
        self.successes += 1
        self.last_success = self.clock.time()
        self._next_due = self.clock.monotonic() + lifetime
        self.install(keys)
        LastGoodKeys.put(
            self.registry_key,
            KeySetSnapshot(tuple(self.algorithms), tuple(entries), dict(self._parsed)),
        )
        metrics.KEY_FETCHES.labels(self.issuer, trigger, "ok").inc()
        metrics.KEYS_LAST_SUCCESS.labels(self.issuer).set(self.clock.time())
        metrics.KEY_FETCH_FAILURES.labels(self.issuer).set(0)
        metrics.KEYS_NEXT_REFRESH.labels(self.issuer).set(self.clock.time() + lifetime)
        log.info(
            "issuer %s: %d signing keys loaded; next refresh in %.0f s",
            self.issuer,
            len(keys),
            lifetime,
        )
        return True

    def _failed(self, trigger: str, outcome: str, detail: str) -> None:
        settings = self.settings
        delay = min(settings.retry_interval * 2**self._failures, settings.interval)
        delay = max(delay, settings.retry_interval)
        self._failures += 1
        self._next_due = self.clock.monotonic() + delay
        metrics.KEY_FETCHES.labels(self.issuer, trigger, outcome).inc()
        metrics.KEY_FETCH_FAILURES.labels(self.issuer).set(self._failures)
        metrics.KEYS_NEXT_REFRESH.labels(self.issuer).set(self.clock.time() + delay)
        log.warning(
            "issuer %s: key fetch failed (%s: %s); the last good keys stay in use, "
            "next try in %.0f s",
            self.issuer,
            outcome,
            detail,
            delay,
        )

    async def _fetch(self) -> tuple[list[VerificationKey], float, list[Any]]:
        url = self.url
        if self.discovery:
            document, _ = await self._get_json(url)
            url = self._jwks_uri(document)
        document, lifetime = await self._get_json(url)
        try:
            entries = jwks_entries(document)
        except ValueError as exc:
            raise FetchFailed("bad_document", str(exc)) from None
        if len(entries) > self.settings.max_keys:
            raise FetchFailed(
                "bad_document", f"{len(entries)} keys, more than max_keys={self.settings.max_keys}"
            )
        keys = self._usable_keys(entries)
        if not keys:
            raise FetchFailed("bad_document", "the key set holds no usable signing key")
        return keys, lifetime, entries

    def _jwks_uri(self, document: Any) -> str:
        if not isinstance(document, dict):
            raise FetchFailed("bad_document", "the discovery document is not a JSON object")
        if document.get("issuer") != self.issuer:
            # OpenID Connect Discovery 1.0, 4.3: the document must name the issuer we asked for.
            raise FetchFailed("issuer_mismatch", "the discovery document names another issuer")
        uri = document.get("jwks_uri")
        if not isinstance(uri, str):
            raise FetchFailed("bad_document", "the discovery document has no jwks_uri")
        try:
            return check_key_url(uri) or ""
        except ValueError as exc:
            raise FetchFailed("bad_document", f"jwks_uri {uri!r}: {exc}") from None

    def _usable_keys(self, entries: list[Any]) -> list[VerificationKey]:
        keys: list[VerificationKey] = []
        parsed: dict[str, VerificationKey | None] = {}
        for index, jwk in enumerate(entries):
            # An unchanged JWK keeps the key parsed last time: keys are parsed once.
            canonical = json.dumps(jwk, sort_keys=True)
            key = self._parsed[canonical] if canonical in self._parsed else self._parse(jwk, index)
            parsed[canonical] = key
            if key is not None:
                keys.append(key)
        self._parsed = parsed
        return keys

    def _parse(self, jwk: Any, index: int) -> VerificationKey | None:
        kid = jwk.get("kid") if isinstance(jwk, dict) else None
        name = kid if isinstance(kid, str) else f"#{index}"
        try:
            return key_from_jwk(
                jwk, accepted=self.algorithms, label=f"jwks{name}", allow_secret=False
            )
        except UnusableKey as exc:
            log.debug("issuer %s: key %s skipped: %s", self.issuer, name, exc)
        except ValueError as exc:
            metrics.KEYS_SKIPPED.labels(self.issuer).inc()
            log.warning("issuer %s: key %s of the key set is ignored: %s", self.issuer, name, exc)
        return None

    async def _get_json(self, url: str) -> tuple[Any, float]:
        session = self._session
        if session is None:
            raise FetchFailed("stopped", "the key refresher is not running")
        settings = self.settings
        try:
            async with asyncio.timeout(settings.timeout):
                async with session.get(
                    url, allow_redirects=False, headers={"Accept": "application/json"}
                ) as response:
                    if response.status != 200:
                        raise FetchFailed("bad_status", f"HTTP {response.status} from {url}")
                    body = await self._read(response, settings.max_bytes)
                    lifetime = cache_lifetime(
                        response.headers,
                        settings.interval,
                        settings.min_interval,
                        settings.max_interval,
                    )
        except TimeoutError:
            raise FetchFailed(
                "timeout", f"{url} did not answer within {settings.timeout} s"
            ) from None
        except aiohttp.ClientError as exc:
            raise FetchFailed("unreachable", f"{url}: {type(exc).__name__}") from None
        try:
            return json.loads(body.decode("utf-8")), lifetime
        except (UnicodeDecodeError, ValueError, RecursionError):
            raise FetchFailed("bad_document", f"{url} did not answer with JSON") from None

    @staticmethod
    async def _read(response: aiohttp.ClientResponse, limit: int) -> bytes:
        if response.content_length is not None and response.content_length > limit:
            raise FetchFailed("too_large", f"the document is larger than {limit} bytes")
        body = bytearray()
        async for chunk in response.content.iter_chunked(64 * 1024):
            body += chunk
            if len(body) > limit:
                raise FetchFailed("too_large", f"the document is larger than {limit} bytes")
        return bytes(body)


__all__ = ["FetchFailed", "KeySetSnapshot", "LastGoodKeys", "RemoteKeys", "cache_lifetime"]
