"""The ``access_concurrency`` plugin: at most N live license sessions per subject.

A session is named by a claim (``session_claim``) or, without one, by the
content id (else the key ids) it plays, so a player that asks again for the
same session is not counted twice. A session stays live for ``interval``
after its last request plus a ``grace`` period for late renewals; a new
session beyond the limit is CONCURRENCY_LIMIT_EXCEEDED, with a Retry-After of
when the oldest session lapses. Renewals keep their session alive and never
take a slot; a release ends the session at once; service-certificate
requests don't count.
"""

from __future__ import annotations

from collections.abc import Sequence

from pydantic import Field, field_validator

from plugins.access.claims import (
    MAX_ID_LENGTH,
    claim_text,
    identity,
    request_type,
    slot_tag,
    state_key,
)
from plugins.access.state import StateCheck, queue_check, require_store
from proxy import (
    ConfigContext,
    Duration,
    ProxyError,
    Reason,
    SessionInfo,
    SessionMode,
    SessionOp,
    StateStore,
    StrictModel,
    hookimpl,
)
from proxy.model import Principal, RequestContext, RequestType

RULE = "access_concurrency"

_MODES = {
    RequestType.NEW: SessionMode.TAKE,
    RequestType.RENEWAL: SessionMode.TOUCH,
    RequestType.RELEASE: SessionMode.RELEASE,
}


class ConcurrencySettings(StrictModel):
    """``[access.concurrency]``: how many sessions one subject may hold at once."""

    limit: int = Field(ge=1)
    """Live sessions allowed per subject."""
    interval: Duration = 300.0
    """Seconds a session stays live after its last license or renewal request."""
    grace: Duration = 60.0
    """Extra seconds a session stays live, so a late renewal still finds it."""
    subject_claim: str | None = None
    """Count per this claim instead of ``sub`` (e.g. an account or household id)."""
    session_claim: str | None = None
    """The claim naming the playback session; the content id stands in without it."""
    fail_open: bool = False
    """Admit requests when the state store is unreachable (default: STATE_UNAVAILABLE)."""

    @field_validator("interval")
    @classmethod
    def _positive(cls, value: float) -> float:
        if value <= 0:
            raise ValueError("must be more than 0")
        return value


def sessions_key(subject: str) -> str:
    """The key of ``subject``'s session set (in the subject's cluster slot)."""
    return state_key("sessions", subject, tag=slot_tag(subject))


class SubjectSessions:
    """The admin API's view of the sessions this rule counts (a :class:`proxy.SessionDirectory`):
    a subject is the value the rule counts by (``sub``, or ``subject_claim``)."""

    def __init__(self, store: StateStore) -> None:
        self.store = store

    async def list_sessions(self, subject: str, *, now: float) -> list[SessionInfo]:
        """The live sessions of ``subject``, soonest to lapse first."""
        found = await self.store.sessions(sessions_key(subject), now=now)
        return [SessionInfo(s, e) for s, e in sorted(found.items(), key=lambda item: item[1])]

    async def end_sessions(
        self, subject: str, sessions: Sequence[str] | None = None, *, now: float
    ) -> int:
        """End some or all of ``subject``'s sessions; their slots are free at once."""
        return await self.store.end_sessions(sessions_key(subject), sessions, now=now)


class ConcurrencyRule:
    """Limits the live license sessions of each subject."""

    order = 30
    """Within the ``trylast`` tier of ``proxy_authorize``: queues its state check last (docs/hooks.md, Order)."""

    def __init__(self) -> None:
        self.settings: ConcurrencySettings | None = None

    @hookimpl
    def proxy_configure(self, config: ConfigContext) -> None:
        """Read ``[access.concurrency]``; the rule is on when the section is present."""
        if config.get("access.concurrency") is None:
            config.claim("access.concurrency")
            self.enabled = False  # nothing to check: the host skips this rule per request
            return
        settings = config.section("access.concurrency", ConcurrencySettings)
        if settings is not None and require_store(config, "access.concurrency"):
            self.settings = settings
            config.services.status.set_sessions(SubjectSessions(config.services.state))

    @staticmethod
    def session_id(ctx: RequestContext, principal: Principal, claim: str | None) -> str:
        """The session a request belongs to: the claim, else the content id, else the key ids."""
        if claim is not None:
            value = claim_text(principal, claim)
            if value is not None:
                if len(value) > MAX_ID_LENGTH:
                    raise ProxyError(
                        Reason.TOKEN_MALFORMED, f"the token's {claim} claim is too long"
                    )
                return "claim:" + value
        if ctx.content_id:
            return "content:" + ctx.content_id
        if ctx.key_ids:
            return "keys:" + ",".join(sorted(k.hex() for k in ctx.key_ids))
        raise ProxyError(
            Reason.REQUEST_INVALID,
            "the request names no session, content id or key id, so its session can't be counted",
            field="content_id",
        )

    @hookimpl(trylast=True)
    def proxy_authorize(self, ctx: RequestContext, principal: Principal) -> None:
        """Queue this request's session: take (new), keep alive (renewal) or end (release)."""
        settings = self.settings
        if settings is None:
            return
        mode = _MODES.get(request_type(ctx))
        if mode is None:
            ctx.note("a service-certificate request holds no session")
            return
        subject = identity(principal, settings.subject_claim, "concurrency")
        session = self.session_id(ctx, principal, settings.session_claim)
        op = SessionOp(
            key=sessions_key(subject),
            session=state_key("session", session),
            limit=settings.limit,
            ttl=settings.interval + settings.grace,
            mode=mode,
        )
        check = StateCheck(
            op,
            RULE,
            Reason.CONCURRENCY_LIMIT_EXCEEDED,
            f"at most {settings.limit} playback sessions may be active at once",
            fail_open=settings.fail_open,
            metadata={"limit": str(settings.limit)},
        )
        queue_check(ctx, check)
        ctx.note(f"queued: session {mode.name.lower()} (limit {settings.limit})")
