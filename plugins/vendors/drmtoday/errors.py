"""DRMtoday's errors: the numeric ``x-dt-resp-code`` (with ``x-dt-error-message``) on a
failed answer, mapped to reason codes.

The code table (VENDOR_FACTS 9.7) is from a third-party tool, not castLabs, and
which HTTP status goes with which class is UNVERIFIED: so a known code decides the
reason whatever the status, and an unknown one falls back on the status (5xx and
429 an outage, other 4xx a refusal).
"""

from __future__ import annotations

from plugins.vendors.drmtoday.crt import VENDOR
from proxy import (
    DrmSystem,
    ProxyError,
    Reason,
    UpstreamResponse,
    playready_fault_error,
    status_error,
    vendor_error,
)

RESP_CODE_HEADER = "x-dt-resp-code"
MESSAGE_HEADER = "x-dt-error-message"

#: Known ``x-dt-resp-code`` values: (reason, category for ``vendor_category``).
RESP_CODES: dict[int, tuple[Reason, str]] = {
    1000: (Reason.UPSTREAM_UNAVAILABLE, "internal"),
    2000: (Reason.UPSTREAM_REJECTED, "request"),
    3000: (Reason.UPSTREAM_REJECTED, "authentication"),
    10001: (Reason.UPSTREAM_REJECTED, "bad_request"),
    20101: (Reason.UPSTREAM_REJECTED, "not_granted"),
    30000: (Reason.UPSTREAM_REJECTED, "drm"),
    40000: (Reason.UPSTREAM_REJECTED, "widevine"),
    40001: (Reason.UPSTREAM_REJECTED, "device_certificate_revoked"),
    40002: (Reason.UPSTREAM_REJECTED, "device_serial_revoked"),
    41000: (Reason.UPSTREAM_REJECTED, "widevine_classic"),
    42000: (Reason.UPSTREAM_REJECTED, "playready"),
    43000: (Reason.UPSTREAM_REJECTED, "fairplay"),
    44000: (Reason.UPSTREAM_REJECTED, "oma"),
    45000: (Reason.UPSTREAM_REJECTED, "cdrm"),
    60000: (Reason.UPSTREAM_REJECTED, "stream_limiting"),
    60001: (Reason.UPSTREAM_REJECTED, "stream_limiting_invalid"),
    60100: (Reason.UPSTREAM_REJECTED, "stream_limit_reached"),
    70000: (Reason.UPSTREAM_REJECTED, "output_protection"),
    70001: (Reason.UPSTREAM_REJECTED, "output_protection_filtered_all_keys"),
    80000: (Reason.UPSTREAM_REJECTED, "take_down"),
    80001: (Reason.UPSTREAM_REJECTED, "taken_down"),
    90000: (Reason.UPSTREAM_REJECTED, "geo_blocking"),
    90001: (Reason.UPSTREAM_REJECTED, "region_prohibited"),
}


def resp_code(response: UpstreamResponse) -> int | None:
    """The numeric ``x-dt-resp-code``, or None when absent or not a number."""
    value = (response.headers.get(RESP_CODE_HEADER) or "").strip()
    return int(value) if value.isdigit() and len(value) <= 9 else None


def failure(drm: DrmSystem, response: UpstreamResponse) -> ProxyError:
    """The error a failed DRMtoday answer stands for.

    The response code wins; a PlayReady SOAP fault with no code is read as PlayReady
    servers send it; otherwise the HTTP status decides.
    """
    code = resp_code(response)
    message = response.headers.get(MESSAGE_HEADER)
    if code is not None and code in RESP_CODES:
        reason, category = RESP_CODES[code]
        verb = "failed" if reason is Reason.UPSTREAM_UNAVAILABLE else "refused the license"
        error = vendor_error(
            reason,
            VENDOR,
            f"DRMtoday {verb} ({category})",
            status=response.status,
            code=str(code),
            message=message,
        )
        error.metadata["vendor_category"] = category
        return error
    if code is None and drm is DrmSystem.PLAYREADY:
        fault = playready_fault_error(VENDOR, response)
        if fault is not None:
            return fault
    return status_error(
        VENDOR, response, code=str(code) if code is not None else None, message=message
    )
