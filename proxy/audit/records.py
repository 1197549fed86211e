"""The two kinds of decision-log record and how each becomes one JSON object.

A record is built on the event loop from values the request already holds
(a few attribute reads); turning it into JSON (time formatting, key ids as
UUIDs, the subject's HMAC) happens on the writer thread. No record has a field
for a token, a key, a challenge or a license, so none can carry one.
"""

from __future__ import annotations

import hashlib
import hmac
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

from proxy.admin.actions import AdminAction
from proxy.stages import StageClock

#: What a license decision came to.
DecisionOutcome = Literal["issued", "denied", "dry_run", "cancelled"]

#: Longest caller-chosen string kept in a record (content ids, subjects); longer ones are cut.
MAX_TEXT = 256
#: Device facts a vendor reports, kept in ``vendor_metadata`` under ``device.<name>`` by its
#: adapter whatever the vendor calls them, and in the decision record as ``vendor_device``.
VENDOR_DEVICE_PREFIX = "device."
VENDOR_DEVICE_FIELDS = ("id", "make", "model", "security_level")


def vendor_device(metadata: Mapping[str, str]) -> dict[str, str] | None:
    """The vendor-neutral device facts of a license's ``vendor_metadata``, or None."""
    found = {}
    for name in VENDOR_DEVICE_FIELDS:
        value = metadata.get(VENDOR_DEVICE_PREFIX + name)
        if value:
            found[name] = value[:MAX_TEXT]
    return found or None


@dataclass(slots=True)
class Decision:
    """One license decision (``type = "license_decision"`` in the log).

    :ivar time: when the answer was known (``time.time()``).
    :ivar stages: the request's stage clock; the record's ``latency_us`` comes from it.
    :ivar stage: where a refused request stopped.
    :ivar vendor_code: the vendor's own error code, when it refused.
    :ivar vendor_device: the device facts the vendor reported (:func:`vendor_device`).
    """

    time: float
    request_id: str
    transport: str
    outcome: DecisionOutcome
    client_address: str | None = None
    drm: str | None = None
    request_type: str | None = None
    key_ids: tuple[bytes, ...] = ()
    content_id: str | None = None
    subject: str | None = None
    issuer: str | None = None
    policy: str | None = None
    backend: str | None = None
    vendor: str | None = None
    vendor_correlation_id: str | None = None
    reason: str | None = None
    vendor_code: str | None = None
    vendor_device: dict[str, str] | None = None
    stage: str | None = None
    stages: StageClock | None = None


class SubjectWriter:
    """Writes a subject as ``[audit] subject`` says: plain, as an HMAC, or not at all."""

    def __init__(self, mode: str, key: bytes | None = None) -> None:
        self.mode = mode
        self._key = key or b""

    def put(self, record: dict[str, Any], subject: str | None, name: str = "subject") -> None:
        """Add ``subject`` to ``record`` under ``name`` (or ``name_hash``), unless omitted."""
        if subject is None or self.mode == "omit":
            return
        if self.mode == "hash":
            digest = hmac.new(self._key, subject.encode("utf-8"), hashlib.sha256).hexdigest()
            record[f"{name}_hash"] = digest
        else:
            record[name] = _cut(subject)


def _cut(text: str) -> str:
    return text if len(text) <= MAX_TEXT else text[:MAX_TEXT]


_second: list[Any] = [None, ""]  # the last whole second formatted, and its text


def iso_time(seconds: float) -> str:
    """RFC 3339 UTC with milliseconds: ``2026-11-23T10:04:05.123Z`` (the text of the whole
    second is kept: records of one second share it)."""
    whole = int(seconds)
    if _second[0] != whole:
        _second[1] = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(whole))
        _second[0] = whole
    return f"{_second[1]}.{int((seconds - whole) * 1000):03d}Z"


def uuid_text(key_id: bytes) -> str:
    """A 16-byte key id as a UUID string (what ``str(uuid.UUID(bytes=...))`` gives, faster)."""
    h = key_id.hex()
    if len(h) != 32:
        return h
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


def decision_dict(decision: Decision, subjects: SubjectWriter) -> dict[str, Any]:
    """The JSON object of a license decision (fields that are unknown are left out)."""
    record: dict[str, Any] = {
        "type": "license_decision",
        "time": iso_time(decision.time),
        "request_id": decision.request_id,
        "transport": decision.transport,
        "outcome": decision.outcome,
    }
    if decision.reason is not None:
        record["reason"] = decision.reason
    if decision.stage is not None:
        record["stage"] = decision.stage
    optional = (
        ("client_address", decision.client_address),
        ("drm", decision.drm),
        ("request_type", decision.request_type),
    )
    for name, value in optional:
        if value is not None:
            record[name] = value
    if decision.key_ids:
        record["key_ids"] = [uuid_text(k) for k in decision.key_ids]
    if decision.content_id is not None:
        record["content_id"] = _cut(decision.content_id)
    subjects.put(record, decision.subject)
    later = (
        ("issuer", decision.issuer),
        ("policy", decision.policy),
        ("backend", decision.backend),
        ("vendor", decision.vendor),
        ("vendor_correlation_id", decision.vendor_correlation_id),
        ("vendor_code", decision.vendor_code),
    )
    for name, value in later:
        if value is not None:
            record[name] = value
    if decision.vendor_device:
        record["vendor_device"] = dict(decision.vendor_device)
    if decision.stages is not None:
        record["latency_us"] = decision.stages.microseconds()
    return record


def admin_dict(action: AdminAction, subjects: SubjectWriter) -> dict[str, Any]:
    """The JSON object of an admin action (:class:`proxy.admin.actions.AdminAction`)."""
    record: dict[str, Any] = {
        "type": "admin_action",
        "time": iso_time(action.time),
        "request_id": action.request_id,
        "transport": "admin",
        "action": action.action.value,
        "outcome": action.outcome,
    }
    if action.operator is not None:
        record["operator"] = _cut(action.operator)
    if action.client_address is not None:
        record["client_address"] = action.client_address
    target: dict[str, Any] = {}
    for name, value in action.target.items():
        if name == "subject":
            subjects.put(target, value)
        else:
            target[name] = _cut(str(value))
    record["target"] = target
    if action.detail:
        record["detail"] = _cut(action.detail)
    return record


__all__ = [
    "Decision",
    "DecisionOutcome",
    "SubjectWriter",
    "admin_dict",
    "decision_dict",
    "iso_time",
    "uuid_text",
]
