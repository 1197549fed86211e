"""The core's HTTP client for vendor backends: one pooled session per process.

Adapters never touch the network; the dispatcher hands their
:class:`~proxy.vendors.UpstreamRequest` to :meth:`UpstreamClient.exchange`,
which

- refuses at once while the backend's circuit is open (``UPSTREAM_UNAVAILABLE``,
  so the dispatcher fails over), and lets one probe through once it half-opens;
- applies the backend's connect and total timeouts, bounded by the caller's
  deadline, and caps the response size; a timeout that the caller's deadline
  caused (``deadline=caller`` in the error's metadata) is no verdict on the
  backend and never opens its circuit;
- sends the request id as a correlation header;
- retries only where nothing reached the vendor (the connection could not be
  made) or where the vendor asked for it (503 with ``Retry-After``), never
  after a timeout or a dropped connection, which may have reached it;
- turns every transport failure into an ``UPSTREAM_*`` reason and counts
  every outcome per backend.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Protocol, TypeVar

import aiohttp
from prometheus_client import Counter, Histogram

from proxy.adapters.settings import BackendSettings
from proxy.clock import Clock
from proxy.errors import ProxyError, Reason
from proxy.upstream.circuit import CircuitBreaker
from proxy.upstream.messages import UpstreamRequest, UpstreamResponse
from proxy.upstream.retry_after import retry_after_seconds
from proxy.upstream.settings import setting
from proxy.upstream.tracing import UpstreamTracer

log = logging.getLogger("proxy.upstream")

#: Outcomes that count against a backend's health; a vendor's refusal does not.
OUTAGE_REASONS = frozenset(
    {Reason.UPSTREAM_UNAVAILABLE, Reason.UPSTREAM_TIMEOUT, Reason.UPSTREAM_BAD_RESPONSE}
)

T = TypeVar("T")

UPSTREAM_CALLS = Counter(
    "license_proxy_upstream_calls",
    "HTTP exchanges with vendor backends, by backend and outcome (ok or a reason code).",
    ["backend", "outcome"],
)
UPSTREAM_RETRIES = Counter(
    "license_proxy_upstream_retries",
    "Retries of vendor requests, by backend and cause (connect or retry_after).",
    ["backend", "cause"],
)
UPSTREAM_SECONDS = Histogram(
    "license_proxy_upstream_seconds",
    "Wall time of one exchange with a vendor backend, retries included.",
    ["backend"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)


class UpstreamBackend(Protocol):
    """What the client needs of a configured backend: its name and settings."""

    @property
    def name(self) -> str:
        """The ``[backends.NAME]`` name."""
        ...

    @property
    def settings(self) -> BackendSettings:
        """The backend's validated settings."""
        ...


@dataclass
class BackendStats:
    """Counters of one backend, kept in memory beside the Prometheus series."""

    exchanges: int = 0
    ok: int = 0
    rejected: int = 0
    outages: int = 0
    attempts: int = 0
    retries: int = 0
    short_circuited: int = 0


class _BackendSeries:
    """The Prometheus children a backend's every call touches, looked up once
    (prometheus-client's ``labels()`` takes a lock and builds a key each time)."""

    def __init__(self, name: str) -> None:
        self.ok = UPSTREAM_CALLS.labels(name, "ok")
        self.seconds = UPSTREAM_SECONDS.labels(name)


class _ConnectFailed(Exception):
    """The connection could not be made: nothing reached the vendor, so a retry is safe."""

    def __init__(self, timed_out: bool) -> None:
        super().__init__("connect failed")
        self.timed_out = timed_out


class UpstreamClient:
    """A pooled aiohttp session shared by every backend of a pipeline."""

    def __init__(self, *, user_agent: str = "drm-license-proxy") -> None:
        self._session: aiohttp.ClientSession | None = None
        self._user_agent = user_agent
        self._breakers: dict[str, CircuitBreaker] = {}
        self._series: dict[str, _BackendSeries] = {}
        self.stats: dict[str, BackendStats] = {}

    async def start(self) -> None:
        """Open the session; must run inside the serving event loop."""
        if self._session is None:
            connector = aiohttp.TCPConnector(limit=0, limit_per_host=256, ttl_dns_cache=300)
            self._session = aiohttp.ClientSession(
                connector=connector,
                headers={"User-Agent": self._user_agent},
                auto_decompress=True,
                trust_env=False,
                # One session serves every viewer: a cookie one vendor answer sets must
                # never ride along with another viewer's request (and keeping none is
                # less work per call).
                cookie_jar=aiohttp.DummyCookieJar(),
            )

    async def close(self) -> None:
        """Close the session and its pooled connections."""
        if self._session is not None:
            await self._session.close()
            self._session = None

    def breaker(self, backend: UpstreamBackend) -> CircuitBreaker:
        """The circuit breaker of ``backend`` (made on first use)."""
        breaker = self._breakers.get(backend.name)
        if breaker is None:
            breaker = CircuitBreaker(backend.name, setting(backend.settings, "circuit_breaker"))
            self._breakers[backend.name] = breaker
        return breaker

    def existing_breaker(self, name: str) -> CircuitBreaker | None:
        """The circuit breaker of backend ``name`` if a call made one (the admin API's view)."""
        return self._breakers.get(name)

    def backend_stats(self, name: str) -> BackendStats:
        """The in-memory counters of backend ``name``."""
        return self.stats.setdefault(name, BackendStats())

    async def exchange(
        self,
        backend: UpstreamBackend,
        request: UpstreamRequest,
        parse: Callable[[UpstreamResponse], T],
        *,
        request_id: str,
        deadline: float | None = None,
        clock: Clock | None = None,
        telemetry: UpstreamTracer | None = None,
    ) -> T:
        """Send ``request`` through ``backend``'s circuit breaker and ``parse`` the answer.

        ``parse`` is the adapter's response parser: a ``ProxyError`` it raises
        keeps its reason; any other exception is ``UPSTREAM_BAD_RESPONSE``.
        Outages count against the circuit; a license or a refusal closes it.
        With ``telemetry`` the exchange is a span, and the vendor gets its ``traceparent``.
        """
        clock = clock or Clock()
        stats = self.backend_stats(backend.name)
        breaker = self.breaker(backend)
        series = self._series.get(backend.name)
        if series is None:
            series = self._series[backend.name] = _BackendSeries(backend.name)
        if not breaker.allow(clock.monotonic()):
            stats.short_circuited += 1
            UPSTREAM_CALLS.labels(backend.name, "circuit_open").inc()
            raise ProxyError(
                Reason.UPSTREAM_UNAVAILABLE,
                f"backend {backend.name!r} is failing; its circuit is open",
                metadata={"backend": backend.name, "circuit": "open"},
            )
        stats.exchanges += 1
        span = (
            None
            if telemetry is None
            else telemetry.upstream(backend.name, request.method, request.url)
        )
        outcome = "cancelled"
        started = time.monotonic()
        try:
            response = await self.send(
                backend,
                request,
                request_id=request_id,
                deadline=deadline,
                trace_headers=None if span is None else span.headers,
            )
            if span is not None:
                span.response(response.status)
            try:
                result = parse(response)
                outcome = "ok"
            except ProxyError:
                raise
            except Exception:
                log.exception("backend %s answered in a form its adapter can't read", backend.name)
                raise ProxyError(
                    Reason.UPSTREAM_BAD_RESPONSE, f"backend {backend.name!r} answered unreadably"
                ) from None
        except ProxyError as error:
            error.metadata.setdefault("backend", backend.name)
            if error.metadata.get("deadline") == "caller":
                # The caller ran out of time before we could ask: no verdict on the backend.
                breaker.abandon()
            elif error.reason in OUTAGE_REASONS:
                stats.outages += 1
                breaker.failure(clock.monotonic())
            else:
                stats.rejected += 1
                breaker.success()
            outcome = error.reason.value
            UPSTREAM_CALLS.labels(backend.name, outcome).inc()
            raise
        except BaseException:
            # Cancelled (the caller went away): no verdict on the backend's health.
            breaker.abandon()
            raise
        finally:
            series.seconds.observe(time.monotonic() - started)
            if span is not None:
                span.finish(outcome)
        stats.ok += 1
        breaker.success()
        series.ok.inc()
        return result

    async def send(
        self,
        backend: UpstreamBackend,
        request: UpstreamRequest,
        *,
        request_id: str,
        deadline: float | None = None,
        trace_headers: Mapping[str, str] | None = None,
    ) -> UpstreamResponse:
        """Send ``request`` to ``backend``'s vendor and read the whole answer.

        The backend's ``timeout`` bounds the whole call, retries included, and
        the caller's ``deadline`` (a ``time.monotonic()`` instant) bounds that.
        ``trace_headers`` (``traceparent``) go with every attempt.
        """
        if self._session is None:
            await self.start()
        settings = backend.settings
        stop_at = time.monotonic() + settings.timeout
        # When the caller's deadline comes before the backend's own timeout, running out
        # of time says nothing about the backend: such timeouts are tagged
        # ``deadline=caller`` and never count against its circuit.
        caller_bound = deadline is not None and deadline < stop_at
        if deadline is not None:
            stop_at = min(stop_at, deadline)
        retries = setting(settings, "retries")
        stats = self.backend_stats(backend.name)
        headers = dict(request.headers)
        headers.setdefault(setting(settings, "correlation_header"), request_id)
        if trace_headers:
            headers.update(trace_headers)
        attempt = 0
        while True:
            attempt += 1
            remaining = stop_at - time.monotonic()
            if remaining <= 0:
                error = _timeout(backend, "the time for this call has run out")
                if caller_bound:
                    error.metadata["deadline"] = "caller"
                raise error
            stats.attempts += 1
            try:
                response = await self._attempt(backend, request, headers, remaining)
            except ProxyError as error:
                if caller_bound and error.reason is Reason.UPSTREAM_TIMEOUT:
                    error.metadata["deadline"] = "caller"
                raise
            except _ConnectFailed as failed:
                if caller_bound and failed.timed_out and remaining <= settings.connect_timeout:
                    # The connect was cut short by the caller's deadline, not by the backend.
                    timed_out = _timeout(backend, "the caller's deadline passed while connecting")
                    timed_out.metadata["deadline"] = "caller"
                    raise timed_out from None
                delay = setting(settings, "connect_retry_delay")
                if attempt <= retries and stop_at - time.monotonic() > delay:
                    stats.retries += 1
                    UPSTREAM_RETRIES.labels(backend.name, "connect").inc()
                    await asyncio.sleep(delay)
                    continue
                what = "timed out connecting" if failed.timed_out else "refused the connection"
                log.warning("backend %s %s", backend.name, what)
                raise ProxyError(
                    Reason.UPSTREAM_UNAVAILABLE,
                    f"backend {backend.name!r} is unreachable",
                    metadata={"backend": backend.name},
                ) from None
            if response.status == 503 and attempt <= retries:
                wait = retry_after_seconds(response.headers)
                if (
                    wait is not None
                    and wait <= setting(settings, "retry_after_max")
                    and stop_at - time.monotonic() > wait
                ):
                    stats.retries += 1
                    UPSTREAM_RETRIES.labels(backend.name, "retry_after").inc()
                    await asyncio.sleep(wait)
                    continue
            return response

    async def _attempt(
        self,
        backend: UpstreamBackend,
        request: UpstreamRequest,
        headers: dict[str, str],
        remaining: float,
    ) -> UpstreamResponse:
        assert self._session is not None
        settings = backend.settings
        limit = settings.max_response_bytes
        timeout = aiohttp.ClientTimeout(
            total=None, sock_connect=min(settings.connect_timeout, remaining)
        )
        try:
            # asyncio.timeout bounds everything, a body that trickles in included.
            async with (
                asyncio.timeout(remaining),
                self._session.request(
                    request.method,
                    request.url,
                    data=request.body,
                    headers=headers,
                    timeout=timeout,
                    allow_redirects=False,
                ) as response,
            ):
                length = response.content_length
                if length is not None and length > limit:
                    raise _oversize(backend)
                body = await _read_limited(response, limit, backend)
                return UpstreamResponse(response.status, response.headers, body)
        except ProxyError:
            raise
        except aiohttp.ConnectionTimeoutError:
            raise _ConnectFailed(timed_out=True) from None
        except aiohttp.ClientConnectorError:
            raise _ConnectFailed(timed_out=False) from None
        except TimeoutError:
            raise _timeout(backend, "did not answer in time") from None
        except (aiohttp.ClientConnectionError, aiohttp.ClientPayloadError, OSError) as exc:
            log.warning("backend %s dropped the exchange: %s", backend.name, type(exc).__name__)
            raise ProxyError(
                Reason.UPSTREAM_UNAVAILABLE,
                f"backend {backend.name!r} closed the connection",
                metadata={"backend": backend.name},
            ) from None
        except aiohttp.ClientResponseError:
            raise ProxyError(
                Reason.UPSTREAM_BAD_RESPONSE,
                f"backend {backend.name!r} answered unreadably",
                metadata={"backend": backend.name},
            ) from None


def _timeout(backend: UpstreamBackend, what: str) -> ProxyError:
    return ProxyError(
        Reason.UPSTREAM_TIMEOUT,
        f"backend {backend.name!r}: {what}",
        metadata={"backend": backend.name},
    )


def _oversize(backend: UpstreamBackend) -> ProxyError:
    return ProxyError(
        Reason.UPSTREAM_BAD_RESPONSE,
        f"backend {backend.name!r} answered with an oversize body",
        metadata={"backend": backend.name},
    )


async def _read_limited(
    response: aiohttp.ClientResponse, limit: int, backend: UpstreamBackend
) -> bytes:
    content = response.content
    if content.is_eof():
        # The whole answer came with its headers (a license usually does): no iteration.
        body = content.read_nowait()
        if len(body) > limit:
            raise _oversize(backend)
        return body
    chunks = []
    size = 0
    async for chunk in content.iter_chunked(64 * 1024):
        size += len(chunk)
        if size > limit:
            raise _oversize(backend)
        chunks.append(chunk)
    return b"".join(chunks)
