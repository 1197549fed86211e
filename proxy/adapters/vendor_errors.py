"""Vendor errors as callers see them: one ``ProxyError`` per refusal or outage, the vendor's
own status, code and (short, scrubbed) message in its metadata, everything else in the log.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Iterable, Mapping

from proxy.errors import ProxyError, Reason
from proxy.upstream import retry_after_seconds
from proxy.upstream.messages import UpstreamResponse

#: The logger vendor bodies go to (scrubbed), for the operator.
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


def header_metadata(headers: Mapping[str, str], names: Iterable[str]) -> dict[str, str]:
    """The named response headers (lower-cased keys), scrubbed, for ``vendor_metadata``."""
    found = {}
    for name in names:
        value = headers.get(name)
        if value:
            found[name.lower()] = scrub(value, 120)
    return found
