"""License sessions: how a renewal or release is recognised as one of a session this proxy licensed.

What binds a renewal to its session is what the CDM proves, never what the caller
claims. A Widevine CDM names each license request with a request id
(``ContentIdentification.*.request_id``, inside the LicenseRequest it signs); the
license server writes it into the license's ``LicenseIdentification``, and the CDM
sends that identification back in every renewal and release
(``existing_license.license_id.request_id``). PlayReady, FairPlay and ClearKey
challenges carry no such identifier in the clear, so their renewals are verified
like any request.

When tracking is on (an issuer's ``renewal_grace``, or the concurrency rule), a new
license request that carries a request id leaves a **record** in the state store, in
the same batch as the state rules (no extra round trip): keyed by a digest of the
token's issuer and subject, the DRM and that id; holding when the session began,
until when it is kept, the playback it belongs to (the concurrency rule's id), its
content id and key ids. A renewal or release finds it with one ``GET``: the token
plugin asks when the token has expired (``renewal_grace``), the pipeline asks for
every other renewal and release, so that entitlement and policy are judged again for
the content the session plays, and the concurrency rule knows its playback.
"""

from __future__ import annotations

import json

from proxy.model import (
    ChallengeInfo,
    DrmSystem,
    LicenseSession,
    Principal,
    RequestContext,
    RequestType,
)
from proxy.services import SessionTracking
from proxy.state import RecordMode, RecordOp, StateUnavailable, slot_tag, state_key

#: Longest license id read from a challenge (Widevine's are 16 to 32 bytes).
MAX_LICENSE_ID = 256
#: The request types that continue a session (they carry the license id, not the content).
CONTINUING = (RequestType.RENEWAL, RequestType.RELEASE)


def license_id(info: ChallengeInfo | None) -> bytes | None:
    """The id the CDM names its license session by (Widevine), or None."""
    if info is None or info.drm_system is not DrmSystem.WIDEVINE:
        return None
    field = (
        "widevine_license_request_id" if info.request_type in CONTINUING else "widevine_request_id"
    )
    value = info.details.get(field)
    if not isinstance(value, bytes) or not value or len(value) > MAX_LICENSE_ID:
        return None
    return value


def record_key(principal: Principal, drm: DrmSystem, session_id: bytes) -> str | None:
    """The store key of the record of ``session_id`` licensed to ``principal`` (in the slot of
    its subject); None when the token names no subject to bind the session to."""
    subject = principal.subject
    if not subject:
        return None
    return state_key(
        "license",
        principal.issuer or "",
        subject,
        drm.value,
        session_id.hex(),
        tag=slot_tag(subject),
    )


def _payload(ctx: RequestContext) -> str:
    doc: dict[str, object] = {}
    if ctx.playback:
        doc["p"] = ctx.playback
    if ctx.content_id:
        doc["c"] = ctx.content_id
    if ctx.key_ids:
        doc["k"] = [key_id.hex() for key_id in ctx.key_ids]
    return json.dumps(doc, separators=(",", ":"))


def _session(started: float, until: float, payload: str) -> LicenseSession:
    try:
        doc = json.loads(payload) if payload else {}
    except ValueError:
        doc = {}
    if not isinstance(doc, dict):
        doc = {}
    playback, content = doc.get("p"), doc.get("c")
    keys = doc.get("k")
    key_ids: tuple[bytes, ...] = ()
    if isinstance(keys, list):
        try:
            key_ids = tuple(bytes.fromhex(k) for k in keys if isinstance(k, str))
        except ValueError:
            key_ids = ()
    return LicenseSession(
        started,
        until,
        playback if isinstance(playback, str) else None,
        content if isinstance(content, str) else None,
        key_ids,
    )


def _grace_seconds(principal: Principal, now: float) -> float:
    """How long the token keeps renewing: until its ``exp`` plus leeway plus grace."""
    if principal.renewal_grace <= 0:
        return 0.0
    exp = principal.claims.get("exp")
    if isinstance(exp, bool) or not isinstance(exp, int | float):
        return 0.0
    return max(0.0, float(exp) + (principal.leeway or 0.0) + principal.renewal_grace - now)


async def find_session(ctx: RequestContext, principal: Principal) -> LicenseSession | None:
    """The record of the session this renewal or release continues, licensed to
    ``principal``; None when there is none (one store round trip).

    :raises StateUnavailable: when the store can't be asked.
    """
    info = ctx.challenge
    session_id = license_id(info)
    if info is None or session_id is None or info.request_type not in CONTINUING:
        return None
    key = record_key(principal, info.drm_system, session_id)
    if key is None:
        return None
    [record] = await ctx.services.state.records([key], now=ctx.services.clock.time())
    if record is None:
        return None
    return _session(record.started, record.until, record.payload)


async def attach_session(ctx: RequestContext, principal: Principal) -> None:
    """Find the session a renewal or release continues and keep it on ``ctx``
    (``ctx.license_session``); a store that can't be asked leaves it unknown."""
    if ctx.license_session is not None:
        return
    try:
        ctx.license_session = await find_session(ctx, principal)
    except StateUnavailable:
        ctx.note("license session unknown: the state store can't be asked")
        return
    if ctx.license_session is not None:
        ctx.note("renews a license session this proxy recorded")


def session_ops(ctx: RequestContext, principal: Principal) -> list[RecordOp]:
    """What this request does to its license session's record: begin (a new license),
    keep (a renewal), end (a release). Empty when tracking is off or nothing names a session."""
    tracking = ctx.services.sessions
    if not tracking.enabled or ctx.request.dry_run:
        return []
    info = ctx.challenge
    session_id = license_id(info)
    if info is None or session_id is None:
        return []
    key = record_key(principal, info.drm_system, session_id)
    if key is None:
        return []
    if info.request_type is RequestType.RELEASE:
        return [RecordOp(key, RecordMode.END)]
    now = ctx.services.clock.time()
    ttl = max(tracking.hold, _grace_seconds(principal, now))
    if info.request_type is RequestType.NEW:
        return [RecordOp(key, RecordMode.BEGIN, ttl, _payload(ctx))]
    return [RecordOp(key, RecordMode.EXTEND, ttl)]


__all__ = [
    "CONTINUING",
    "LicenseSession",
    "SessionTracking",
    "attach_session",
    "find_session",
    "license_id",
    "record_key",
    "session_ops",
]
