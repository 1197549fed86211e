"""The decision log (``[audit]``): one record per license decision and per admin action.

The core owns it, like the state store: the builder makes the pipeline's
:class:`AuditLog` from ``[audit]`` (``services.audit``) and runs it with the
pipeline. The built-in ``audit`` plugin writes a :class:`Decision` for every
license issued, refused, dry-run or cancelled, from the observer hooks; the
admin API writes an :class:`AdminAction` for every action through
:meth:`AuditLog.admin`::

    from proxy.audit import AdminAction

    pipeline.services.audit.admin(
        AdminAction(action="revoke_token", actor="ops@example", target={"jti": jti},
                    request_id=request_id, client_address=peer)
    )

Records reach the log stream and/or a rotating JSON-lines file, written by a
thread so that the event loop never waits for a disk (``docs/operations.md``,
"Decision log").
"""

from proxy.audit.records import AdminAction, AdminOutcome, Decision, DecisionOutcome
from proxy.audit.settings import AuditSettings
from proxy.audit.sink import STREAM_LOGGER, AuditLog

__all__ = [
    "STREAM_LOGGER",
    "AdminAction",
    "AdminOutcome",
    "AuditLog",
    "AuditSettings",
    "Decision",
    "DecisionOutcome",
]
