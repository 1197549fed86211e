"""One typed record per admin action, handed to one callback.

Every call of an ``/admin/v1/`` route, allowed or refused, becomes one
:class:`AdminAction` passed to the callback the :class:`~proxy.server.ProxyApp`
holds (``on_admin_action``). By default it is :func:`log_admin_action`, one INFO
line on the ``proxy.admin`` logger; the decision log records it by replacing (or
wrapping) that callback. A record holds no token and no secret: the operator is
named by the admin token's ``sub`` (or a certificate identity), the target by
what the operator typed (a subject, a ``jti``, a backend name).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum

log = logging.getLogger("proxy.admin")


class AdminActionKind(StrEnum):
    """What an operator did."""

    REVOKE = "revoke"
    SHOW_REVOCATION = "show_revocation"
    LIFT_REVOCATION = "lift_revocation"
    LIST_SESSIONS = "list_sessions"
    END_SESSIONS = "end_sessions"
    SHOW_CIRCUITS = "show_circuits"
    SHOW_KEY_SOURCES = "show_key_sources"
    RELOAD = "reload"
    UNKNOWN = "unknown"
    """A refused call whose route could not be told (no such route)."""


@dataclass(frozen=True, slots=True)
class AdminAction:
    """One admin API call, as the decision log records it.

    :ivar time: seconds since the epoch (the pipeline's clock).
    :ivar request_id: the call's request id (also in its answer and log lines).
    :ivar action: what was asked.
    :ivar operator: who asked (``token:<sub>``), or None when not authenticated.
    :ivar client_address: the admin caller's address.
    :ivar target: what it was asked of (``subject``, ``issuer``, ``jti``, ``session``...).
    :ivar outcome: ``ok``, or the reason code of the refusal.
    :ivar detail: what happened, in words (a revocation's end, sessions ended...).
    """

    time: float
    request_id: str
    action: AdminActionKind
    operator: str | None
    client_address: str | None
    target: Mapping[str, str] = field(default_factory=dict)
    outcome: str = "ok"
    detail: str = ""


AdminActionSink = Callable[[AdminAction], None]
"""Receives every admin action; it must not raise (an error is logged, the answer stands)."""


def log_admin_action(action: AdminAction) -> None:
    """The default sink: one line per action on the ``proxy.admin`` logger."""
    target = " ".join(f"{key}={value!r}" for key, value in action.target.items())
    log.info(
        "admin %s by %s from %s: %s%s%s",
        action.action.value,
        action.operator or "(unauthenticated)",
        action.client_address or "?",
        action.outcome,
        f" {target}" if target else "",
        f" ({action.detail})" if action.detail else "",
    )


__all__ = ["AdminAction", "AdminActionKind", "AdminActionSink", "log_admin_action"]
