"""Is this the license the vendor promised? Shape checks of vendor answers, and the SOAP
faults PlayReady servers answer errors with.

Nothing here touches the network: each function takes bytes or a response the
core already read, and returns the raw license or raises ``ProxyError``.
"""

from __future__ import annotations

import json
from typing import Any
from xml.etree.ElementTree import Element

import defusedxml.ElementTree as SafeET
from defusedxml import DefusedXmlException

from proxy.adapters.vendor_errors import bad_response, vendor_error
from proxy.errors import ProxyError, Reason
from proxy.model import DrmSystem
from proxy.upstream.messages import UpstreamResponse

#: PlayReady fault status codes that mean the server failed, not that it refused.
PLAYREADY_SERVER_FAULTS = frozenset({"0x8004C600"})


def json_object(vendor: str, response: UpstreamResponse) -> dict[str, Any]:
    """The response body as a JSON object, or ``UPSTREAM_BAD_RESPONSE``."""
    try:
        doc = json.loads(response.body)
    except (ValueError, UnicodeDecodeError):
        raise bad_response(vendor, "is not JSON", response.status) from None
    if not isinstance(doc, dict):
        raise bad_response(vendor, "is not a JSON object", response.status)
    return doc


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
