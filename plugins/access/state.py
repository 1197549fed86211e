"""The ``access_state`` plugin: one call to the state store for every state rule of a request.

The replay, concurrency and rate-limit rules each queue a :class:`StateCheck`
on the request; this plugin runs last on ``proxy_authorize`` and settles the
whole queue in one :meth:`proxy.state.StateStore.apply` on the store the core
opened from ``[access.state]`` (one Redis round trip). The same call writes the
request's license session record when sessions are tracked
(:func:`proxy.session_ops`: a new license begins one, a renewal keeps it, a
release ends it), so renewals can be recognised later at no extra round trip.
A check that refuses denies with its own rule's reason code. When the
request fails later (a policy rule, no policy, the vendor), the use and the
session it took are given back, so a token is never spent on a license that
was not issued.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from typing import Any

from plugins.access.metrics import ACCESS_DENIALS, STATE_REFUNDS, STATE_UNAVAILABLE
from proxy import (
    ConfigContext,
    Op,
    ProxyError,
    Reason,
    SessionTracking,
    StateStore,
    StateUnavailable,
    hookimpl,
    session_ops,
)
from proxy.model import Principal, RequestContext

log = logging.getLogger("plugins.access.state")

#: ``ctx.extras`` key of the checks queued for this request.
QUEUE = "access.state_checks"
#: ``ctx.extras`` key of what the store took for this request (given back on failure).
TAKEN = "access.state_taken"

#: At most one "store unavailable" log line per this many seconds.
_LOG_EVERY = 10.0


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
    """True when the ``access_state`` plugin will settle this rule's checks; else report an
    error at ``path`` (a rule whose checks nobody settles would enforce nothing)."""
    if "access_state" in config.plugin_names:
        return True
    config.error(path, "this rule needs the access_state plugin, which is not loaded")
    return False


#: The sections of the rules that queue state checks for this plugin to settle.
STATE_RULE_SECTIONS = ("access.replay", "access.concurrency", "access.rate_limit")


class StateRules:
    """Settles every queued state check in one call to the core's state store."""

    order = 100
    """Within the ``trylast`` tier of ``proxy_authorize``: settles every queued check after every other rule allowed (docs/hooks.md, Order)."""

    def __init__(self) -> None:
        self.store: StateStore | None = None
        self._rules = True
        self._tracking: SessionTracking | None = None
        self._last_log = float("-inf")
        self._unlogged = 0
        self._failing = False

    @property
    def enabled(self) -> bool:
        """False when nothing is queued for it and no license session is tracked: the host
        then skips its per-request hooks (read once every plugin has configured)."""
        return self._rules or (self._tracking is not None and self._tracking.enabled)

    @hookimpl
    def proxy_configure(self, config: ConfigContext) -> None:
        """Take the core's store (``[access.state]``); idle when no state rule is configured
        and no license session is tracked."""
        self.store = config.services.state
        self._tracking = config.services.sessions
        self._rules = any(config.get(rule) is not None for rule in STATE_RULE_SECTIONS)

    @hookimpl(trylast=True)
    async def proxy_authorize(self, ctx: RequestContext, principal: Principal) -> None:
        """Settle the queued state checks (and the license session record) in one store
        call; deny with the refusing rule's code."""
        checks: list[StateCheck] = ctx.extras.pop(QUEUE, None) or []
        records = session_ops(ctx, principal)
        if not (checks or records) or self.store is None:
            return
        try:
            outcome = await self.store.apply(
                [*(c.op for c in checks), *records],
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
        if records:
            ctx.note(f"license session record: {records[0].mode.name.lower()}")

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
