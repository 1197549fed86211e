"""The ``access_state`` plugin: ``[access.state]``, and one store call for every state rule.

The replay, concurrency and rate-limit rules each queue a :class:`StateCheck`
on the request; this plugin runs last on ``proxy_authorize`` and settles the
whole queue in one :meth:`proxy.state.StateStore.apply` (one Redis round
trip). A check that refuses denies with its own rule's reason code. When the
request fails later (a policy rule, no policy, the vendor), the use and the
session it took are given back, so a token is never spent on a license that
was not issued.
"""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from pydantic import Field, ValidationInfo, field_validator

from plugins.access.metrics import ACCESS_DENIALS, STATE_REFUNDS, STATE_UNAVAILABLE
from proxy import hookimpl
from proxy.config import ConfigContext, Duration, StrictModel
from proxy.errors import ProxyError, Reason
from proxy.model import Principal, RequestContext
from proxy.secrets import BASE_DIR_CONTEXT_KEY, SecretRef, resolve_secret
from proxy.state import Op, RedisStore, StateStore, StateUnavailable, open_store

log = logging.getLogger("plugins.access.state")

#: ``ctx.extras`` key of the checks queued for this request.
QUEUE = "access.state_checks"
#: ``ctx.extras`` key of what the store took for this request (given back on failure).
TAKEN = "access.state_taken"

_SCHEMES = ("redis", "rediss", "unix")
#: At most one "store unavailable" log line per this many seconds.
_LOG_EVERY = 10.0


class StateSettings(StrictModel):
    """``[access.state]``: where the replay, concurrency and rate counters live."""

    store: str = "memory"
    """``memory`` (this process; the default) or a Redis URL (``redis://host:6379/0``,
    ``rediss://`` for TLS, ``unix:///path``), or ``env:NAME`` / ``file:PATH`` holding one."""
    password: SecretRef | None = None
    """The Redis password by reference, to keep it out of the URL."""
    key_prefix: str = Field(default="license-proxy:", max_length=100)
    """Prepended to every key, so deployments can share one Redis."""
    timeout: Duration = 0.25
    """Seconds to connect to Redis and to wait for an answer before it counts as unavailable."""

    @field_validator("store")
    @classmethod
    def _store_url(cls, value: str, info: ValidationInfo) -> str:
        if value.startswith(("env:", "file:")):
            base_dir = (info.context or {}).get(BASE_DIR_CONTEXT_KEY)
            value = resolve_secret(value, base_dir).text()
        if value == "memory":
            return value
        try:
            scheme = urlsplit(value).scheme
        except ValueError:
            scheme = ""
        if scheme not in _SCHEMES:
            # Never echo the value: it may hold a password.
            raise ValueError("must be 'memory' or a redis://, rediss:// or unix:// URL")
        return value

    @field_validator("timeout")
    @classmethod
    def _positive(cls, value: float) -> float:
        if value <= 0:
            raise ValueError("must be more than 0")
        return value


@dataclass(frozen=True, slots=True)
class StateCheck:
    """One state operation a rule queues, with what to answer when it refuses.

    :ivar op: the store operation.
    :ivar rule: the queuing plugin's name (logs and metrics).
    :ivar reason: the reason code of a refusal.
    :ivar detail: the sentence of a refusal (no token, no claim value).
    :ivar fail_open: admit the request when the store is unreachable.
    """

    op: Op
    rule: str
    reason: Reason
    detail: str
    fail_open: bool = False
    metadata: dict[str, str] = field(default_factory=dict)


def queue_check(ctx: RequestContext, check: StateCheck) -> None:
    """Add ``check`` to the request's queue; ``access_state`` settles it after every other rule."""
    ctx.extras.setdefault(QUEUE, []).append(check)


def require_store(config: ConfigContext, path: str) -> bool:
    """True when the ``access_state`` plugin configured a store; else report an error at ``path``."""
    if isinstance(config.services.state, StateStore):
        return True
    config.error(path, "this rule needs the access_state plugin, which is not loaded")
    return False


#: The sections of the rules that queue state checks for this plugin to settle.
STATE_RULE_SECTIONS = ("access.replay", "access.concurrency", "access.rate_limit")


class StateRules:
    """Owns the state store and settles every queued state check in one call."""

    def __init__(self) -> None:
        self.store: StateStore | None = None
        self._last_log = float("-inf")
        self._unlogged = 0
        self._failing = False

    @hookimpl(tryfirst=True)
    def proxy_configure(self, config: ConfigContext) -> None:
        """Open the configured store (before the rules that use it configure)."""
        settings = config.section("access.state", StateSettings)
        if settings is None:
            return
        # The per-request hooks only settle what the state rules queue; with none
        # of them configured the host need not call them.
        self.enabled = any(config.get(rule) is not None for rule in STATE_RULE_SECTIONS)
        password = settings.password.text() if settings.password is not None else None
        store = open_store(
            settings.store,
            prefix=settings.key_prefix,
            password=password,
            timeout=settings.timeout,
        )
        self.store = store
        config.services.state = store
        config.add_cleanup_ctx(self._lifetime)

    async def _lifetime(self) -> AsyncIterator[None]:
        store = self.store
        assert store is not None
        await store.start()
        if isinstance(store, RedisStore) and not await store.ping():
            log.warning(
                "state store %s is unreachable; state rules answer as configured until it is back",
                store.describe(),
            )
        try:
            yield
        finally:
            await store.close()

    @hookimpl(trylast=True)
    async def proxy_authorize(self, ctx: RequestContext, principal: Principal) -> None:
        """Settle the queued state checks in one store call; deny with the refusing rule's code."""
        checks: list[StateCheck] | None = ctx.extras.pop(QUEUE, None)
        if not checks or self.store is None:
            return
        try:
            outcome = await self.store.apply(
                [c.op for c in checks],
                now=ctx.services.clock.time(),
                commit=not ctx.request.dry_run,
            )
        except StateUnavailable as exc:
            self._unavailable(ctx, checks, exc)
            return
        if self._failing:
            self._failing = False
            self._last_log = float("-inf")  # the next outage is reported at once
            log.warning(
                "state store %s is reachable again (%d request(s) met it down since the last report)",
                self.store.describe(),
                self._unlogged,
            )
            self._unlogged = 0
        if outcome.denied is not None:
            check = checks[outcome.denied]
            ACCESS_DENIALS.labels(check.rule, check.reason.value).inc()
            raise ProxyError(
                check.reason,
                check.detail,
                metadata=check.metadata,
                retry_after=outcome.retry_after,
            )
        if outcome.taken:
            ctx.extras[TAKEN] = outcome.taken
        ctx.note(f"{len(checks)} state checks passed in one {self.store.kind} call")

    def _unavailable(
        self, ctx: RequestContext, checks: list[StateCheck], exc: StateUnavailable
    ) -> None:
        self._failing = True
        admit = all(c.fail_open for c in checks)
        decision = "allow" if admit else "deny"
        STATE_UNAVAILABLE.labels(decision).inc()
        self._log_unavailable(exc, decision)
        if admit:
            ctx.note("state store unavailable: admitted (every rule fails open)")
            return
        rules = sorted({c.rule for c in checks if not c.fail_open})
        for rule in rules:
            ACCESS_DENIALS.labels(rule, Reason.STATE_UNAVAILABLE.value).inc()
        raise ProxyError(
            Reason.STATE_UNAVAILABLE,
            "the shared state store can't be reached; try again shortly",
            retry_after=1,
        )

    def _log_unavailable(self, exc: Exception, decision: str) -> None:
        now = time.monotonic()
        self._unlogged += 1
        if now - self._last_log < _LOG_EVERY:
            return
        assert self.store is not None
        log.error(
            "state store %s unavailable (%s): %d request(s) answered %s since the last report",
            self.store.describe(),
            exc,
            self._unlogged,
            decision,
        )
        self._last_log = now
        self._unlogged = 0

    @hookimpl
    async def proxy_license_denied(self, ctx: RequestContext, error: ProxyError) -> None:
        """Give back the use and the session this request took, when it failed after taking them."""
        taken: Any = ctx.extras.pop(TAKEN, None)
        if not taken or self.store is None:
            return
        try:
            await self.store.undo(taken)
        except StateUnavailable as exc:
            STATE_REFUNDS.labels("error").inc()
            log.warning("could not give back state after a failed request: %s", exc)
            return
        STATE_REFUNDS.labels("ok").inc()
