"""The ``access_concurrency`` plugin: at most N playbacks per subject (and per subject and content).

What it counts is the **playback** (:mod:`plugins.access.playback`): every license
request of one playback (key rotation, a quality switch, a retry) counts once. A
playback stays live for ``heartbeat_timeout`` after its last license or renewal
request. A new playback beyond a limit is, by ``mode``:

- ``block_new`` (default): refused with CONCURRENCY_LIMIT_EXCEEDED and a Retry-After
  of when the oldest playback lapses;
- ``stop_oldest``: admitted, and the playback heard from least recently is stopped:
  its next renewal is refused with CONCURRENCY_LIMIT_EXCEEDED (for one
  ``heartbeat_timeout``; asking for a new license makes it a new playback).

Renewals keep their playback alive and never take a slot; a release frees it at
once; service-certificate requests don't count. ``per_content`` limits the
playbacks of one content (content id, else key ids) beside the subject's limit.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

from pydantic import Field, field_validator, model_validator

from plugins.access.claims import identity, request_type, slot_tag, state_key
from plugins.access.playback import CMCD_HEADERS, content_tag, playback_source
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
    """``[access.concurrency]``: how many playbacks one subject may hold at once."""

    limit: int = Field(ge=1)
    """Live playbacks allowed per subject."""
    per_content: int | None = Field(default=None, ge=1)
    """Live playbacks allowed per subject of one content (content id, else key ids)."""
    mode: Literal["block_new", "stop_oldest"] = "block_new"
    """What a new playback beyond a limit meets: a refusal, or the oldest one stopped."""
    heartbeat_timeout: Duration | None = None
    """Seconds a playback stays live after its last license or renewal request
    (default: ``interval`` + ``grace``, 6 minutes)."""
    interval: Duration = 300.0
    """The older spelling: with ``grace``, what ``heartbeat_timeout`` defaults to."""
    grace: Duration = 60.0
    """The older spelling: added to ``interval``."""
    subject_claim: str | None = None
    """Count per this claim instead of ``sub`` (e.g. an account or household id)."""
    session_claim: str | None = None
    """A claim naming the playback; it wins over every other source."""
    cmcd: bool = True
    """Read the player's CMCD session id (``sid``) to tell its playbacks apart."""
    fail_open: bool = False
    """Admit requests when the state store is unreachable (default: STATE_UNAVAILABLE)."""

    @field_validator("interval", "heartbeat_timeout")
    @classmethod
    def _positive(cls, value: float | None) -> float | None:
        if value is not None and value <= 0:
            raise ValueError("must be more than 0")
        return value

    @model_validator(mode="after")
    def _one_spelling(self) -> ConcurrencySettings:
        if self.heartbeat_timeout is not None and self.model_fields_set & {"interval", "grace"}:
            raise ValueError("heartbeat_timeout replaces interval and grace: give one or the other")
        return self

    @property
    def timeout(self) -> float:
        """Seconds a playback stays live after its last request."""
        if self.heartbeat_timeout is not None:
            return self.heartbeat_timeout
        return self.interval + self.grace


def sessions_key(subject: str) -> str:
    """The key of ``subject``'s live playbacks (in the subject's cluster slot)."""
    return state_key("sessions", subject, tag=slot_tag(subject))


def stopped_key(subject: str) -> str:
    """The key of ``subject``'s playbacks stopped to make room (``stop_oldest``)."""
    return state_key("stopped", subject, tag=slot_tag(subject))


def contents_key(subject: str) -> str:
    """The key of what each of ``subject``'s live playbacks plays (``per_content``)."""
    return state_key("contents", subject, tag=slot_tag(subject))


class SubjectSessions:
    """The admin API's view of the playbacks this rule counts (a :class:`proxy.SessionDirectory`):
    a subject is the value the rule counts by (``sub``, or ``subject_claim``)."""

    def __init__(self, store: StateStore) -> None:
        self.store = store

    async def list_sessions(self, subject: str, *, now: float) -> list[SessionInfo]:
        """The live playbacks of ``subject``, soonest to lapse first."""
        found = await self.store.sessions(sessions_key(subject), now=now)
        return [SessionInfo(s, e) for s, e in sorted(found.items(), key=lambda item: item[1])]

    async def end_sessions(
        self, subject: str, sessions: Sequence[str] | None = None, *, now: float
    ) -> int:
        """End some or all of ``subject``'s playbacks; their slots are free at once."""
        return await self.store.end_sessions(sessions_key(subject), sessions, now=now)


class ConcurrencyRule:
    """Limits the live playbacks of each subject."""

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
            # renewals find their playback through the license session they continue
            config.services.sessions.track(hold=settings.timeout)
            if settings.cmcd:
                for header in CMCD_HEADERS:  # CORS preflights allow what players send
                    config.read_request_header(header)

    def _playback(self, ctx: RequestContext, principal: Principal) -> str | None:
        """The playback's id in the store (a digest), or None when nothing names it."""
        settings = self.settings
        assert settings is not None
        found = playback_source(ctx, principal, settings.session_claim, cmcd=settings.cmcd)
        if found is None:
            return None
        source, value = found
        ctx.note(f"playback named by {source}")
        return value if source == "recorded" else state_key("session", f"{source}:{value}")

    @hookimpl(trylast=True)
    def proxy_authorize(self, ctx: RequestContext, principal: Principal) -> None:
        """Queue this request's playback: take (new), keep alive (renewal) or free (release)."""
        settings = self.settings
        if settings is None:
            return
        mode = _MODES.get(request_type(ctx))
        if mode is None:
            ctx.note("a service-certificate request holds no playback")
            return
        subject = identity(principal, settings.subject_claim, "concurrency")
        playback = self._playback(ctx, principal)
        if playback is None:
            if mode is SessionMode.TAKE:
                raise ProxyError(
                    Reason.REQUEST_INVALID,
                    "the request names no device, playback, content id or key id, so its "
                    "playback can't be counted",
                    field="content_id",
                )
            ctx.note(f"a {request_type(ctx).value} of a playback this rule does not know")
            return
        ctx.playback = playback
        stop = settings.mode == "stop_oldest"
        per_content = settings.per_content
        op = SessionOp(
            key=sessions_key(subject),
            session=playback,
            limit=settings.limit,
            ttl=settings.timeout,
            mode=mode,
            stopped_key=stopped_key(subject) if stop else None,
            content_key=contents_key(subject) if per_content else None,
            content=(content_tag(ctx) or "-") if per_content else "-",
            content_limit=per_content or 0,
        )
        queue_check(ctx, self._check(op, settings))
        ctx.note(f"queued: playback {mode.name.lower()} (limit {settings.limit})")

    @staticmethod
    def _check(op: SessionOp, settings: ConcurrencySettings) -> StateCheck:
        if op.mode is SessionMode.TOUCH:
            detail = "this playback was stopped: a newer one took its place"
        elif settings.per_content:
            detail = (
                f"at most {settings.limit} playbacks may be active at once, "
                f"{settings.per_content} of one content"
            )
        else:
            detail = f"at most {settings.limit} playbacks may be active at once"
        metadata = {"limit": str(settings.limit)}
        if settings.per_content:
            metadata["per_content"] = str(settings.per_content)
        return StateCheck(
            op,
            RULE,
            Reason.CONCURRENCY_LIMIT_EXCEEDED,
            detail,
            fail_open=settings.fail_open,
            metadata=metadata,
        )
