"""Which playback a license request belongs to: what the concurrency rule counts.

One playback (one stream on one screen) sends many requests: a license per key
rotation period, per quality or track type (shaka-player issue #8179: a dozen at
start with key rotation), retries, renewals, a release. The rule counts playbacks,
named from the strongest source the request offers:

1. ``session_claim``, when configured: the token names its playback;
2. the **device**: the ``access_device`` rule's id (token claim, a trusted caller's
   ``client.device_id``, or its header), else a trusted caller's ``client.device_id``;
3. for renewals and releases, the **license session** they continue: the playback
   recorded when its license was issued (:mod:`proxy.sessions`: Widevine's request id,
   which the CDM proves, links them);
4. the player's **CMCD session id** (``sid``, CTA-5004), from the ``CMCD`` query
   parameter or the ``CMCD-Session`` header: shaka-player and dash.js send one per
   playback when CMCD is on;
5. the **content** id, else the key ids.

CMCD is what the player says, so it ranks below what the token, a trusted caller and
the CDM prove; a CMCD value that does not read (not a structured-field dictionary,
``sid`` not a string of at most 64 characters) is ignored, never refused: a license
must not fail over analytics data.
"""

from __future__ import annotations

import hashlib

import http_sf

from plugins.access.claims import MAX_ID_LENGTH, claim_text
from plugins.access.device import DEVICE_ID
from proxy import ProxyError, Reason
from proxy.model import LicenseRequest, Principal, RequestContext

#: Where CMCD data travels (CTA-5004): a query parameter, or its session header.
CMCD_QUERY = "CMCD"
CMCD_HEADER = "cmcd-session"
#: Every header a player in CMCD header mode sends: a CORS preflight must allow them all,
#: or the browser never sends the license request.
CMCD_HEADERS = ("cmcd-object", "cmcd-request", "cmcd-session", "cmcd-status")
#: The longest CMCD ``sid`` (CTA-5004 limits it to 64 characters).
MAX_CMCD_SID = 64
#: The longest CMCD value read at all.
MAX_CMCD_VALUE = 4096


def cmcd_session_id(request: LicenseRequest) -> str | None:
    """The player's CMCD session id, from the query parameter or the header; None when absent
    or unreadable."""
    raw = request.query.get(CMCD_QUERY) or request.headers.get(CMCD_HEADER)
    if not raw or len(raw) > MAX_CMCD_VALUE:
        return None
    try:
        fields = http_sf.parse(raw.encode("ascii"), tltype="dictionary")
    except (UnicodeEncodeError, ValueError, http_sf.StructuredFieldError):
        return None
    if not isinstance(fields, dict):
        return None
    entry = fields.get("sid")
    value = entry[0] if isinstance(entry, tuple) else None
    if not isinstance(value, str) or not value or len(value) > MAX_CMCD_SID:
        return None
    return value


def content_tag(ctx: RequestContext) -> str | None:
    """What the request plays, as a digest: its content id, else its key ids."""
    if ctx.content_id:
        part = "content\x1f" + ctx.content_id
    elif ctx.key_ids:
        part = "keys\x1f" + ",".join(sorted(k.hex() for k in ctx.key_ids))
    else:
        return None
    return hashlib.blake2b(part.encode(), digest_size=8).hexdigest()


def playback_source(
    ctx: RequestContext, principal: Principal, session_claim: str | None, *, cmcd: bool = True
) -> tuple[str, str] | None:
    """``(source, value)`` naming the request's playback, strongest source first (see the
    module docs); None when nothing names one (a renewal of an unknown session, say)."""
    if session_claim is not None:
        value = claim_text(principal, session_claim)
        if value is not None:
            if len(value) > MAX_ID_LENGTH:
                raise ProxyError(
                    Reason.TOKEN_MALFORMED, f"the token's {session_claim} claim is too long"
                )
            return "claim", value
    device = ctx.extras.get(DEVICE_ID) or (
        ctx.request.client.device_id if ctx.request.client.trusted else None
    )
    if device:
        return "device", device
    session = ctx.license_session
    if session is not None and session.playback:
        return "recorded", session.playback
    sid = cmcd_session_id(ctx.request) if cmcd else None
    if sid is not None:
        return "cmcd", sid
    if ctx.content_id:
        return "content", ctx.content_id
    if ctx.key_ids:
        return "keys", ",".join(sorted(k.hex() for k in ctx.key_ids))
    return None


__all__ = [
    "CMCD_HEADER",
    "CMCD_HEADERS",
    "CMCD_QUERY",
    "cmcd_session_id",
    "content_tag",
    "playback_source",
]
