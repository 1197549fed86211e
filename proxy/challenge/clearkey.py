"""W3C EME ClearKey license requests (``{"kids": [...], "type": ...}``) and release messages,
and the licenses written back.

Key ids are base64url without padding (RFC 7515), 16 bytes each, in CENC
(big-endian, UUID) order: no byte swapping.

Android's ClearKey CDM before 8.1 (API 27) writes the key ids in standard base64
(``+`` and ``/``, padding removed) and reads ``k`` and ``kid`` of the license the same
way, refusing padding (ExoPlayer's ``ClearKeyUtil`` fixes both sides up for its apps).
Such a request is accepted, marked ``key_id_encoding = base64`` in ``details``, and
answered in that encoding (:func:`license_json`). A request whose key ids hold neither
``+ /`` nor ``- _`` reads the same in both encodings and is answered in base64url.
"""

from __future__ import annotations

import base64
from collections.abc import Callable, Iterable

import orjson

from proxy.challenge.common import MAX_KEY_IDS, KeyIds, Warnings, invalid, safe_text
from proxy.encoding import b64url_decode, b64url_encode
from proxy.model import ChallengeInfo, DrmSystem, RequestType

DRM = "ClearKey"
SESSION_TYPES = frozenset({"temporary", "persistent-license", "persistent-usage-record"})
#: ``details`` key naming the key id encoding of a request that is not base64url.
KEY_ID_ENCODING = "key_id_encoding"
#: Its value for the standard base64 of Android's ClearKey CDM before 8.1.
STANDARD_BASE64 = "base64"


def _key_id_alphabet(kid: str) -> str | None:
    """``base64`` or ``base64url`` when ``kid``'s characters name one, None when either fits."""
    standard = "+" in kid or "/" in kid
    url = "-" in kid or "_" in kid
    if standard and url:
        raise invalid(DRM, "a key id mixes base64 and base64url characters")
    if standard:
        return STANDARD_BASE64
    return "base64url" if url else None


def _decode_key_id(kid: object) -> tuple[bytes, str | None]:
    if not isinstance(kid, str):
        raise invalid(DRM, "a key id is not base64url")
    alphabet = _key_id_alphabet(kid)
    try:
        return b64url_decode(kid.replace("+", "-").replace("/", "_")), alphabet
    except ValueError:
        raise invalid(DRM, "a key id is not base64url (nor standard base64)") from None


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
        doc = orjson.loads(body)  # strict UTF-8 and RFC 8259, nesting bounded
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
    alphabets: set[str] = set()
    for kid in kids:
        raw, alphabet = _decode_key_id(kid)
        if alphabet is not None:
            alphabets.add(alphabet)
        key_ids.add(raw)
    if len(alphabets) > 1:
        raise invalid(DRM, "the key ids mix base64 and base64url")
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
    if alphabets == {STANDARD_BASE64}:
        details[KEY_ID_ENCODING] = STANDARD_BASE64
        client[KEY_ID_ENCODING] = "base64 (Android ClearKey CDM before 8.1)"
    return ChallengeInfo(
        drm_system=DrmSystem.CLEARKEY,
        request_type=request_type,
        payload=body,
        key_ids=key_ids.result(),
        client=client,
        warnings=warnings.result(),
        details=details,
    )


def _b64_unpadded(data: bytes) -> str:
    return base64.b64encode(data).rstrip(b"=").decode("ascii")


def _encoder(standard_base64: bool) -> Callable[[bytes], str]:
    return _b64_unpadded if standard_base64 else b64url_encode


def license_json(
    keys: Iterable[tuple[bytes, bytes]], session_type: str, *, standard_base64: bool = False
) -> bytes:
    """A ClearKey license (a JSON Web Key Set) for ``(key id, key)`` pairs, written the way
    the requesting CDM reads it: base64url for EME CDMs; for Android's before 8.1 (the
    request said ``key_id_encoding = base64``) standard base64 without padding, and only
    ``k``, ``kid`` and ``kty`` per key, as ExoPlayer's ``ClearKeyUtil`` writes it."""
    encode = _encoder(standard_base64)
    entries = [{"kty": "oct", "kid": encode(kid), "k": encode(key)} for kid, key in keys]
    doc: dict[str, object] = {"keys": entries}
    if not standard_base64:
        doc["type"] = session_type
    return orjson.dumps(doc)


def release_json(key_ids: Iterable[bytes], *, standard_base64: bool = False) -> bytes:
    """The acknowledgement of a release message, in the request's key id encoding."""
    encode = _encoder(standard_base64)
    return orjson.dumps({"kids": [encode(k) for k in key_ids]})


def wants_standard_base64(info: ChallengeInfo) -> bool:
    """True when the request came from a CDM that reads standard base64 (Android < 8.1)."""
    return info.details.get(KEY_ID_ENCODING) == STANDARD_BASE64
