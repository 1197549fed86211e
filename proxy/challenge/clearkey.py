"""W3C EME ClearKey license requests (``{"kids": [...], "type": ...}``) and release messages.

Key ids are base64url without padding (RFC 7515), 16 bytes each, in CENC
(big-endian, UUID) order: no byte swapping.
"""

from __future__ import annotations

import json

from proxy.challenge.common import MAX_KEY_IDS, KeyIds, Warnings, invalid, safe_text
from proxy.encoding import b64url_decode
from proxy.model import ChallengeInfo, DrmSystem, RequestType

DRM = "ClearKey"
SESSION_TYPES = frozenset({"temporary", "persistent-license", "persistent-usage-record"})


def looks_like_clearkey(body: bytes) -> bool:
    """A cheap sniff for DRM detection: a JSON object that mentions ``kids``."""
    head = body[:256].lstrip()
    return head.startswith(b"{") and b'"kids"' in body


def parse_clearkey(body: bytes) -> ChallengeInfo:
    """Parse a ClearKey license request or release message.

    A message with ``type`` is a license request for that session type; one
    without is a release message (EME's persistent-license release).

    :raises ProxyError: CHALLENGE_INVALID, with a short reason, when it is unreadable.
    """
    try:
        doc = json.loads(body.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError):
        raise invalid(DRM, "the request is not UTF-8 JSON") from None
    if not isinstance(doc, dict):
        raise invalid(DRM, "the request is not a JSON object")
    kids = doc.get("kids")
    if not isinstance(kids, list) or not kids:
        raise invalid(DRM, "kids must be a non-empty list")
    if len(kids) > MAX_KEY_IDS:
        raise invalid(DRM, f"more than {MAX_KEY_IDS} key ids")
    key_ids = KeyIds(DRM)
    for kid in kids:
        try:
            raw = b64url_decode(kid)
        except ValueError:
            raise invalid(DRM, "a key id is not base64url") from None
        key_ids.add(raw)
    warnings = Warnings()
    for name in doc:
        if name not in ("kids", "type"):
            warnings.add(f"unknown member {safe_text(name, 32)!r} ignored")
    if "type" not in doc:
        request_type = RequestType.RELEASE
        session_type = None
    else:
        session_type = doc["type"]
        if not isinstance(session_type, str) or session_type not in SESSION_TYPES:
            raise invalid(
                DRM, "type must be temporary, persistent-license or persistent-usage-record"
            )
        request_type = RequestType.NEW
    details = {"session_type": session_type} if session_type else {}
    client = {"session_type": session_type} if session_type else {}
    return ChallengeInfo(
        drm_system=DrmSystem.CLEARKEY,
        request_type=request_type,
        payload=body,
        key_ids=key_ids.result(),
        client=client,
        warnings=warnings.result(),
        details=details,
    )
