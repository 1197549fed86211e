"""W3C EME ClearKey license requests (``{"kids": [...], "type": ...}``) and release messages."""

from __future__ import annotations

import json

from proxy.encoding import b64url_decode
from proxy.errors import ProxyError, Reason
from proxy.model import ChallengeInfo, DrmSystem, RequestType

SESSION_TYPES = frozenset({"temporary", "persistent-license", "persistent-usage-record"})
MAX_KEY_IDS = 64


def looks_like_clearkey(body: bytes) -> bool:
    """A cheap sniff for DRM detection: a JSON object that mentions ``kids``."""
    head = body[:256].lstrip()
    return head.startswith(b"{") and b'"kids"' in body


def _invalid(reason: str) -> ProxyError:
    return ProxyError(Reason.CHALLENGE_INVALID, f"ClearKey: {reason}")


def parse_clearkey(body: bytes) -> ChallengeInfo:
    """Parse a ClearKey license request or release message.

    A message with ``type`` is a license request for that session type; one
    without is a release message (EME's persistent-license release).
    """
    try:
        doc = json.loads(body.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError):
        raise _invalid("the request is not UTF-8 JSON") from None
    if not isinstance(doc, dict):
        raise _invalid("the request is not a JSON object")
    kids = doc.get("kids")
    if not isinstance(kids, list) or not kids:
        raise _invalid("kids must be a non-empty list")
    if len(kids) > MAX_KEY_IDS:
        raise _invalid(f"more than {MAX_KEY_IDS} key ids")
    key_ids: list[bytes] = []
    for kid in kids:
        try:
            raw = b64url_decode(kid)
        except ValueError:
            raise _invalid("a key id is not base64url") from None
        if len(raw) != 16:
            raise _invalid("a key id is not 16 bytes")
        if raw not in key_ids:
            key_ids.append(raw)
    warnings = [f"unknown member {name!r} ignored" for name in doc if name not in ("kids", "type")]
    session_type = doc.get("type")
    if session_type is None:
        request_type = RequestType.RELEASE
    elif session_type in SESSION_TYPES:
        request_type = RequestType.NEW
    else:
        raise _invalid("type must be temporary, persistent-license or persistent-usage-record")
    details = {"session_type": session_type} if session_type else {}
    client = {"session_type": session_type} if session_type else {}
    return ChallengeInfo(
        drm_system=DrmSystem.CLEARKEY,
        request_type=request_type,
        payload=body,
        key_ids=tuple(key_ids),
        client=client,
        warnings=warnings,
        details=details,
    )
