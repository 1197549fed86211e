"""Small encoders adapters share: key material, base64, GUIDs, compact JSON, content ids.

Nothing here touches the network or raises ``ProxyError``: values in, values out
(``ValueError`` for key material that does not fit, at start).
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from collections.abc import Iterable, Mapping
from typing import Any

import orjson

from proxy.adapters.call import VendorCall
from proxy.secrets import Secret

#: What PlayReady servers expect in the request (VENDOR_FACTS 7.2).
PLAYREADY_CONTENT_TYPE = "text/xml; charset=utf-8"
PLAYREADY_SOAP_ACTION = '"http://schemas.microsoft.com/DRM/2007/03/protocols/AcquireLicense"'
OCTET_STREAM = "application/octet-stream"

#: Types orjson would write where ``json`` (and so PyJWT) refuses them: handed to
#: ``json``, which raises. A ``datetime`` ``exp`` must not become text.
ORJSON_OPTIONS = orjson.OPT_PASSTHROUGH_DATETIME | orjson.OPT_PASSTHROUGH_DATACLASS
_HEX = re.compile(r"^[0-9a-fA-F]+$")
_B64 = re.compile(r"^[A-Za-z0-9+/_-]+={0,2}$")


def key_material(
    secret: Secret, what: str, *, lengths: Iterable[int], encodings: Iterable[str] = ("base64",)
) -> bytes:
    """The key bytes behind a secret reference.

    Vendors hand out keys as text (Axinom: base64; Widevine: hex). A
    reference to such text (``env:``, ``file:``) is decoded with the first of
    ``encodings`` that yields a valid length; an inline ``hex:``/``base64:``
    reference is already bytes and used as it is. Raises ``ValueError``
    naming ``what`` (never the value) when no reading fits.
    """
    lengths = tuple(lengths)
    raw = secret.value
    text = raw.strip()
    for encoding in encodings:
        decoded = _decode(text, encoding)
        if decoded is not None and len(decoded) in lengths:
            return decoded
    if len(raw) in lengths:
        return raw
    wanted = " or ".join(str(n) for n in lengths)
    names = "/".join(encodings)
    raise ValueError(f"{what} ({secret.reference}) must be {wanted} bytes, given as {names} text")


def _decode(text: bytes, encoding: str) -> bytes | None:
    try:
        value = text.decode("ascii")
    except UnicodeDecodeError:
        return None
    if encoding == "hex" and _HEX.match(value) and len(value) % 2 == 0:
        return bytes.fromhex(value)
    if encoding == "base64" and _B64.match(value):
        try:
            return base64.b64decode(value.replace("-", "+").replace("_", "/"), validate=True)
        except (binascii.Error, ValueError):
            return None
    return None


def b64decode_any(text: str) -> bytes:
    """Decode standard or URL-safe base64, padded or not; ValueError otherwise."""
    if not isinstance(text, str) or not _B64.match(text.strip()):
        raise ValueError("not base64")
    value = text.strip().rstrip("=").replace("-", "+").replace("_", "/")
    try:
        return base64.b64decode(value + "=" * (-len(value) % 4), validate=True)
    except (binascii.Error, ValueError):
        raise ValueError("not base64") from None


def b64(data: bytes) -> str:
    """Standard base64 text."""
    return base64.b64encode(data).decode("ascii")


def guid(key_id: bytes) -> str:
    """A 16-byte key id as a GUID string (big-endian, UUID order): ``str(uuid.UUID(bytes=))``
    at a quarter of its cost (adapters write several per request)."""
    if len(key_id) != 16:
        raise ValueError("bytes is not a 16-char string")
    h = key_id.hex()
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


def json_bytes(doc: Mapping[str, Any]) -> bytes:
    """Compact UTF-8 JSON bytes, keys in the order given (serialized once; signatures
    cover exactly these bytes).

    orjson writes them (a tenth of ``json``'s cost): for strings, integers, booleans,
    lists and objects the bytes ``json.dumps(separators=(",", ":"), ensure_ascii=False)``
    writes. What orjson refuses (integers beyond 64 bits, non-string keys, lone
    surrogates) or would write where ``json`` refuses (datetimes, dataclasses) goes
    through ``json``, as before.
    """
    try:
        return orjson.dumps(doc, option=ORJSON_OPTIONS)
    except TypeError:
        return json.dumps(doc, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


def fairplay_content_id(value: str | None) -> str | None:
    """A FairPlay asset id as vendors want it: no ``skd://`` scheme, no ``?query``."""
    if not value:
        return value
    if value.lower().startswith("skd://"):
        value = value[6:]
    return value.split("?", 1)[0] or None


def widevine_content_id(call: VendorCall) -> bytes | None:
    """The bytes for Widevine's ``content_id``: the challenge's own bytes when the id was
    read from the challenge (it may be binary, shown to the rest of the proxy as hex),
    else the caller's content id as UTF-8."""
    raw = call.challenge.details.get("widevine_content_id")
    from_challenge = call.challenge.content_id and call.content_id == call.challenge.content_id
    if isinstance(raw, bytes) and raw and from_challenge:
        return raw
    return call.content_id.encode("utf-8") if call.content_id else None
