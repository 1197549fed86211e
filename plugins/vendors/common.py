"""What the vendor adapters share: key material, vendor errors, wrapped answers.

Nothing here touches the network; every function takes bytes or a response
the core already read and returns values or raises ``ProxyError``.
"""

from __future__ import annotations

import base64
import binascii
import json
import logging
import re
import uuid
from collections.abc import Iterable, Mapping
from typing import Any
from xml.etree.ElementTree import Element

import defusedxml.ElementTree as SafeET
from defusedxml import DefusedXmlException

from proxy.errors import ProxyError, Reason
from proxy.model import DrmSystem
from proxy.secrets import Secret
from proxy.upstream import retry_after_seconds
from proxy.vendors import UpstreamResponse, VendorCall

#: What PlayReady servers expect in the request (VENDOR_FACTS 7.2).
PLAYREADY_CONTENT_TYPE = "text/xml; charset=utf-8"
PLAYREADY_SOAP_ACTION = '"http://schemas.microsoft.com/DRM/2007/03/protocols/AcquireLicense"'
OCTET_STREAM = "application/octet-stream"

_HEX = re.compile(r"^[0-9a-fA-F]+$")
_B64 = re.compile(r"^[A-Za-z0-9+/_-]+={0,2}$")
log = logging.getLogger("plugins.vendors")

#: Anything shaped like a JWT, a long run of base64, a run of hex as long as a 64-bit
#: value or more, or padded base64: never echoed to a caller nor logged.
_SECRETISH = re.compile(
    r"[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]*"
    r"|[A-Za-z0-9+/=_-]{33,}"
    r"|\b[0-9A-Fa-f]{16,}\b"
    r"|[A-Za-z0-9+/]{6,}={1,2}(?![A-Za-z0-9+/=])"
)
_UNPRINTABLE = re.compile(r"[^\x20-\x7e]+")
#: What a stack trace, an exception dump or an HTML page looks like: such text says how
#: the vendor is built, not why it refused, and only the server log gets it.
_INTERNALS = re.compile(
    r"Traceback \(most recent call last\)"
    r"|\bat [\w.$<>`]+\("
    r"|\.(?:cs|java|py|js|ts|go|rb|php|kt|scala):(?:line )?\d"
    r'|File "[^"]+", line \d'
    r"|\w+(?:Exception|Error)\s*:"
    r"|\bpanic:|\bgoroutine \d+"
    r"|<\s*(?:!DOCTYPE|html|head|body|script)\b",
    re.IGNORECASE,
)

#: PlayReady fault status codes that mean the server failed, not that it refused.
PLAYREADY_SERVER_FAULTS = frozenset({"0x8004C600"})


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
    """A 16-byte key id as a GUID string (big-endian, UUID order)."""
    return str(uuid.UUID(bytes=key_id))


def scrub(text: str | None, limit: int = 200) -> str:
    """A vendor's message made safe to pass on: printable, short, with nothing token-like."""
    if not text:
        return ""
    text = _UNPRINTABLE.sub(" ", str(text))
    text = _SECRETISH.sub("[redacted]", text).strip()
    return text[:limit]


def vendor_message(text: str | None, limit: int = 200) -> str | None:
    """A vendor's message as a caller may see it: its first line, scrubbed; None when the
    text looks like a stack trace, an exception dump or markup (those stay in the log)."""
    if not text:
        return None
    text = str(text)
    if _INTERNALS.search(text):
        return None
    lines = text.strip().splitlines()
    first = scrub(lines[0], limit) if lines else ""
    return first or None


def log_vendor_body(vendor: str, status: int | None, body: bytes | str | None) -> None:
    """Log what a vendor answered, for the operator: an excerpt, scrubbed of anything
    token- or key-like (callers only ever get structured fields)."""
    if not body:
        return
    text = body[:4096].decode("utf-8", "replace") if isinstance(body, bytes) else body[:4096]
    level = logging.WARNING if status is None or status >= 500 else logging.INFO
    log.log(level, "%s answered HTTP %s: %s", vendor, status, scrub(text, 1000))


def vendor_error(
    reason: Reason,
    vendor: str,
    detail: str,
    *,
    status: int | None = None,
    code: str | None = None,
    message: str | None = None,
    retry_after: float | None = None,
) -> ProxyError:
    """A ``ProxyError`` carrying the vendor's own status and code, and its message when
    that message is a short, known field that reveals nothing of the vendor's insides."""
    metadata = {"vendor": vendor}
    if status is not None:
        metadata["vendor_status"] = str(status)
    if code:
        metadata["vendor_code"] = scrub(code, 64)
    shown = vendor_message(message)
    if shown:
        metadata["vendor_message"] = shown
    elif message:
        log_vendor_body(vendor, status, message)
    return ProxyError(reason, detail, metadata=metadata, retry_after=retry_after)


def json_message(
    body: bytes, fields: Iterable[str] = ("message", "error_description")
) -> str | None:
    """A message from a JSON error body's known fields (top level, or inside ``error``)."""
    try:
        doc = json.loads(body[:4096])
    except (ValueError, UnicodeDecodeError):
        return None
    if not isinstance(doc, dict):
        return None
    for inner in (doc.get("error"), doc):
        if isinstance(inner, dict):
            for name in fields:
                value = inner.get(name)
                if isinstance(value, str) and value:
                    return value
    if isinstance(doc.get("error"), str) and doc["error"]:
        return doc["error"]
    return None


def status_error(
    vendor: str,
    response: UpstreamResponse,
    *,
    code: str | None = None,
    message: str | None = None,
) -> ProxyError:
    """The error for a non-success HTTP status when the body said nothing more precise.

    5xx and 429 are outages (``UPSTREAM_UNAVAILABLE``, with the vendor's
    ``Retry-After``); other 4xx are refusals (``UPSTREAM_REJECTED``); any
    other status is ``UPSTREAM_BAD_RESPONSE``. The body goes to the log only.
    """
    status = response.status
    log_vendor_body(vendor, status, response.body)
    if status >= 500 or status == 429:
        return vendor_error(
            Reason.UPSTREAM_UNAVAILABLE,
            vendor,
            f"the {vendor} license service failed (HTTP {status})",
            status=status,
            code=code,
            message=message,
            retry_after=retry_after_seconds(response.headers),
        )
    if 400 <= status < 500:
        return vendor_error(
            Reason.UPSTREAM_REJECTED,
            vendor,
            f"the {vendor} license service refused the request (HTTP {status})",
            status=status,
            code=code,
            message=message,
        )
    return vendor_error(
        Reason.UPSTREAM_BAD_RESPONSE,
        vendor,
        f"the {vendor} license service answered HTTP {status}",
        status=status,
        code=code,
        message=message,
    )


def bad_response(vendor: str, detail: str, status: int | None = None) -> ProxyError:
    """``UPSTREAM_BAD_RESPONSE`` for an answer in a shape the vendor never documents."""
    return vendor_error(
        Reason.UPSTREAM_BAD_RESPONSE, vendor, f"the {vendor} answer {detail}", status=status
    )


def json_object(vendor: str, response: UpstreamResponse) -> dict[str, Any]:
    """The response body as a JSON object, or ``UPSTREAM_BAD_RESPONSE``."""
    try:
        doc = json.loads(response.body)
    except (ValueError, UnicodeDecodeError):
        raise bad_response(vendor, "is not JSON", response.status) from None
    if not isinstance(doc, dict):
        raise bad_response(vendor, "is not a JSON object", response.status)
    return doc


def json_bytes(doc: Mapping[str, Any]) -> bytes:
    """Compact JSON bytes (serialized once; signatures cover exactly these bytes)."""
    return json.dumps(doc, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


def _local(tag: str) -> str:
    return tag.rsplit("}", 1)[-1]


def _find(root: Element, name: str) -> Element | None:
    for element in root.iter():
        if _local(element.tag) == name:
            return element
    return None


def soap_fault(body: bytes) -> dict[str, str] | None:
    """The SOAP fault in a PlayReady answer: ``faultcode``, ``faultstring``, ``status_code``.

    None when the body is not a SOAP fault. Parsed with defusedxml (no
    entities, no external references).
    """
    if b"Fault" not in body:
        return None
    try:
        root = SafeET.fromstring(body)
    except (SafeET.ParseError, DefusedXmlException, ValueError):
        return None
    fault = _find(root, "Fault")
    if fault is None:
        return None
    found: dict[str, str] = {}
    for name, key in (
        ("faultcode", "faultcode"),
        ("faultstring", "faultstring"),
        ("StatusCode", "status_code"),
    ):
        element = _find(fault, name)
        if element is not None and element.text:
            found[key] = element.text.strip()
    return found


def playready_fault_error(vendor: str, response: UpstreamResponse) -> ProxyError | None:
    """The error a PlayReady SOAP fault stands for, or None when the body holds none.

    PlayReady answers every error with HTTP 500 and a fault; the fault's
    ``StatusCode`` tells a refusal (revoked device, bad challenge) from a
    server failure (``0x8004C600``).
    """
    fault = soap_fault(response.body)
    if fault is None:
        return None
    code = fault.get("status_code") or fault.get("faultcode")
    message = fault.get("faultstring")
    if fault.get("status_code", "").upper().replace("0X", "0x") in PLAYREADY_SERVER_FAULTS:
        return vendor_error(
            Reason.UPSTREAM_UNAVAILABLE,
            vendor,
            f"the {vendor} PlayReady service failed",
            status=response.status,
            code=code,
            message=message,
        )
    return vendor_error(
        Reason.UPSTREAM_REJECTED,
        vendor,
        f"the {vendor} PlayReady service refused the license",
        status=response.status,
        code=code,
        message=message,
    )


#: SignedMessage.type values a Widevine license server answers with.
_WIDEVINE_LICENSE = 2
_WIDEVINE_ERROR_RESPONSE = 3
_WIDEVINE_SERVICE_CERTIFICATE = 5


def check_widevine_answer(vendor: str, body: bytes, status: int = 200) -> bytes:
    """``body`` when it is a Widevine SignedMessage LICENSE or SERVICE_CERTIFICATE.

    The first field of a SignedMessage is ``type`` (tag ``08``); an
    ERROR_RESPONSE (3) is the vendor's refusal, anything else is not a
    Widevine answer at all (``UPSTREAM_BAD_RESPONSE``).
    """
    if len(body) < 2 or body[0] != 0x08:
        raise bad_response(vendor, "is not a Widevine message", status)
    if body[1] == _WIDEVINE_ERROR_RESPONSE:
        raise vendor_error(
            Reason.UPSTREAM_REJECTED,
            vendor,
            f"the {vendor} Widevine service answered with an error message",
            status=status,
            code="ERROR_RESPONSE",
        )
    if body[1] not in (_WIDEVINE_LICENSE, _WIDEVINE_SERVICE_CERTIFICATE):
        raise bad_response(vendor, "is not a Widevine license", status)
    return body


def check_playready_answer(vendor: str, body: bytes, status: int = 200) -> bytes:
    """``body`` when it is a PlayReady AcquireLicenseResponse, else ``UPSTREAM_BAD_RESPONSE``."""
    if b"AcquireLicenseResponse" not in body:
        raise bad_response(vendor, "is not a PlayReady license response", status)
    return body


def check_license(vendor: str, drm: DrmSystem, body: bytes, status: int = 200) -> bytes:
    """The raw license bytes after the shape check that suits ``drm``."""
    if not body:
        raise bad_response(vendor, "is empty", status)
    if drm is DrmSystem.WIDEVINE:
        return check_widevine_answer(vendor, body, status)
    if drm is DrmSystem.PLAYREADY:
        return check_playready_answer(vendor, body, status)
    return body


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


def header_metadata(headers: Mapping[str, str], names: Iterable[str]) -> dict[str, str]:
    """The named response headers (lower-cased keys), scrubbed, for ``vendor_metadata``."""
    found = {}
    for name in names:
        value = headers.get(name)
        if value:
            found[name.lower()] = scrub(value, 120)
    return found
