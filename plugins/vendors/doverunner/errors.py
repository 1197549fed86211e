"""DoveRunner's errors: ``{"errorCode", "message"}`` JSON, at HTTP 200 as the docs say (whether
the current service also uses 4xx/5xx is UNVERIFIED, so the body is read at any status).

The server codes of VENDOR_FACTS 10.6 are refusals (``UPSTREAM_REJECTED``), except those
that say DoveRunner's own side failed (its Widevine answer unreadable, a certificate
file missing), which are outages that fail over. Code 8002 nests
``{"ERROR", "MESSAGE"}`` JSON in ``message``.
"""

from __future__ import annotations

import json
from typing import Any

from plugins.vendors.doverunner.policy import VENDOR
from proxy import ProxyError, Reason, UpstreamResponse, status_error, vendor_error

_R, _U = Reason.UPSTREAM_REJECTED, Reason.UPSTREAM_UNAVAILABLE


def _span(first: int, last: int, reason: Reason, category: str) -> dict[str, tuple[Reason, str]]:
    return {str(code): (reason, category) for code in range(first, last + 1)}


#: Known ``errorCode`` values: (reason, category for ``vendor_category``).
ERROR_CODES: dict[str, tuple[Reason, str]] = {
    "1003": (_R, "site_not_found"),
    "1004": (_R, "site_stopped"),
    "1006": (_R, "site_key_decrypt_failed"),
    "7007": (_R, "custom_data_unreadable"),
    "7008": (_R, "custom_data_decrypt_failed"),
    "7009": (_R, "token_unreadable"),
    "7010": (_R, "token_missing"),
    "7011": (_R, "token_expired"),
    "7012": (_R, "cid_mismatch"),
    "7013": (_R, "token_json_invalid"),
    "7016": (_R, "token_invalid"),
    "7018": (_R, "drm_type_invalid"),
    "7019": (_R, "hash_mismatch"),
    **_span(7101, 7107, _R, "widevine"),
    "7110": (_R, "device_revoked"),
    "7111": (_U, "widevine_answer_unreadable"),
    "7112": (_R, "pssh_invalid"),
    "7113": (_U, "service_certificate_unavailable"),
    **_span(7201, 7205, _R, "playready"),
    "7206": (_R, "playready_custom_data_missing"),
    **_span(7300, 7304, _R, "fairplay"),
    "7305": (_R, "spc_missing"),
    "7306": (_R, "device_id_missing"),
    "7308": (_R, "asset_id_invalid"),
    "7315": (_U, "fairplay_certificate_unavailable"),
    "7316": (_R, "spc_decrypt_failed"),
    "7317": (_R, "spc_invalid"),
    "8002": (_R, "callback_refused"),
    "8004": (_R, "nonce_invalid"),
    **_span(8706, 8716, _R, "usage_rule"),
    "9001": (_R, "parameter_missing"),
    "9999": (_R, "mode_unsupported"),
}


def error_document(body: bytes) -> dict[str, Any] | None:
    """The ``{"errorCode", "message"}`` object a body holds, or None."""
    if body.lstrip()[:1] != b"{" or len(body) > 65536:
        return None
    try:
        doc = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        return None
    if isinstance(doc, dict) and "errorCode" in doc:
        return doc
    return None


def _message(code: str, message: Any) -> str | None:
    if not isinstance(message, str):
        return None
    if code == "8002":
        try:
            nested = json.loads(message)
        except ValueError:
            return message
        if isinstance(nested, dict) and isinstance(nested.get("MESSAGE"), str):
            return str(nested["MESSAGE"])
    return message


def failure(response: UpstreamResponse, doc: dict[str, Any] | None) -> ProxyError:
    """The error a DoveRunner answer stands for: its ``errorCode`` when it has one (the
    reason from :data:`ERROR_CODES`; an unknown code is a refusal unless the status says
    the service failed), else the HTTP status."""
    if doc is None:
        return status_error(VENDOR, response)
    code = str(doc.get("errorCode"))[:16]
    reason, category = ERROR_CODES.get(code, (None, "unknown"))
    if reason is None:
        outage = response.status >= 500 or response.status == 429
        reason = Reason.UPSTREAM_UNAVAILABLE if outage else Reason.UPSTREAM_REJECTED
    verb = "failed" if reason is Reason.UPSTREAM_UNAVAILABLE else "refused the license"
    error = vendor_error(
        reason,
        VENDOR,
        f"DoveRunner {verb} ({category})",
        status=response.status,
        code=code,
        message=_message(code, doc.get("message")),
    )
    error.metadata["vendor_category"] = category
    return error
