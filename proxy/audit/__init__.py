"""The decision log (``[audit]``): one record per license decision and per admin action.

The core owns it, like the state store: the builder makes the pipeline's
:class:`AuditLog` from ``[audit]`` (``services.audit``) and runs it with the
pipeline. The built-in ``audit`` plugin writes a :class:`Decision` for every
license issued, refused, dry-run or cancelled, from the observer hooks; every
admin API call reaches :meth:`AuditLog.admin` as a
:class:`proxy.admin.actions.AdminAction`, through ``ProxyApp.on_admin_action``
(whose default writes to the current pipeline's log)::

    pipeline.services.audit.admin(action)

Records reach the log stream and/or a rotating JSON-lines file, written by a
thread so that the event loop never waits for a disk (``docs/operations.md``,
"Decision log").
"""

from proxy.audit.records import (
    VENDOR_DEVICE_FIELDS,
    VENDOR_DEVICE_PREFIX,
    Decision,
    DecisionOutcome,
    vendor_device,
)
from proxy.audit.settings import AuditSettings
from proxy.audit.sink import STREAM_LOGGER, AuditLog

__all__ = [
    "STREAM_LOGGER",
    "VENDOR_DEVICE_FIELDS",
    "VENDOR_DEVICE_PREFIX",
    "AuditLog",
    "AuditSettings",
    "Decision",
    "DecisionOutcome",
    "vendor_device",
]
