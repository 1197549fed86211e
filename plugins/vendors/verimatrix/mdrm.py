"""Verimatrix's errors: MDRM codes, found anywhere in the body (its format is UNVERIFIED),
mapped to reasons by a table (VENDOR_FACTS 2.6)."""

from __future__ import annotations

import re

from proxy import (
    DrmSystem,
    ProxyError,
    Reason,
    UpstreamResponse,
    bad_response,
    json_message,
    log_vendor_body,
    playready_fault_error,
    retry_after_seconds,
    status_error,
    vendor_error,
)

VENDOR = "verimatrix"
_R = Reason.UPSTREAM_REJECTED
_U = Reason.UPSTREAM_UNAVAILABLE
#: MDRM code -> reason (VENDOR_FACTS 2.6). A 5xx family member is an outage, the
#: rest are refusals of this request; codes not listed fall back on the HTTP status.
MDRM_CODES: dict[int, Reason] = {
    500: _U,
    501: _R,
    502: _R,
    503: _R,
    504: _R,
    505: _R,
    506: _R,
    507: _U,
    508: _R,
    509: _R,
    510: _R,
    511: _R,
    717: _R,
    1000: _U,
    1001: _R,
    1002: _R,
    1003: _R,
    1004: _R,
    1005: _R,
    1006: _R,
    1007: _R,
    1008: _R,
    1009: _U,
    1010: _U,
    1011: _R,
    1012: _U,
    1013: _R,
    1014: _R,
    1015: _U,
    1110: _R,
}
_MDRM = re.compile(r"MDRM[-_ ]?(\d{3,4})", re.IGNORECASE)
_MESSAGE_FIELDS = ("message", "errorMessage", "error_message", "description", "detail")


def read_mdrm(body: bytes) -> tuple[str | None, str | None]:
    """The MDRM code in an error body, whatever its shape (JSON or text), and the message
    of a JSON body's known message field (free text never reaches callers)."""
    text = body[:4096].decode("utf-8", "replace")
    message = json_message(body, _MESSAGE_FIELDS)
    match = _MDRM.search(text)
    code = f"MDRM-{match.group(1)}" if match else None
    return code, message


def mdrm_error(
    response: UpstreamResponse, drm: DrmSystem, *, missing: str | None = None
) -> ProxyError:
    """The error for a Verimatrix answer: by its MDRM code, else by its HTTP status."""
    code, message = read_mdrm(response.body)
    if code is None and drm is DrmSystem.PLAYREADY and response.status == 500:
        fault = playready_fault_error(VENDOR, response)
        if fault is not None:
            return fault
    if code is not None:
        log_vendor_body(VENDOR, response.status, response.body)
        reason = MDRM_CODES.get(int(code[5:]))
        if reason is None:
            reason = _U if response.status >= 500 or response.status == 429 else _R
        return vendor_error(
            reason,
            VENDOR,
            f"Verimatrix answered {code}",
            status=response.status,
            code=code,
            message=message,
            retry_after=retry_after_seconds(response.headers),
        )
    if missing is not None:
        return bad_response(VENDOR, f"has no {missing}", response.status)
    return status_error(VENDOR, response, message=message)
