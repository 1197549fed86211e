"""Renewals after the token expired: an issuer's ``renewal_grace``.

Players renew and release licenses minutes or hours after playback began, often
with the short-lived token the app handed them at the start. Such a request is
accepted when all of this holds (else it keeps its TOKEN_EXPIRED):

- it is a renewal or release naming a license session by what the CDM proves
  (Widevine: the license's request id; :func:`proxy.license_id`);
- the token passes every check but ``exp``: shape, issuer, key, signature, ``nbf``,
  ``iat``, audience, required claims;
- it expired (plus the issuer's leeway) at most ``renewal_grace`` ago;
- this proxy recorded that session for the token's issuer and subject, and the
  token was valid when the session began: it had not expired (``exp`` plus leeway
  after the start) and was not yet to become valid (``nbf`` minus leeway at or
  before the start).

Only such requests pay for the record lookup (one store round trip); a token that
verifies, and every new license request, never do.
"""

from __future__ import annotations

import dataclasses

from plugins.token.verify import TokenTimes, TokenVerifier
from proxy import ProxyError, Reason, StateUnavailable, find_session, license_id
from proxy.model import Principal, RequestContext, RequestType

#: The request types that may be accepted after the token expired.
CONTINUING = (RequestType.RENEWAL, RequestType.RELEASE)


def may_renew_after_expiry(ctx: RequestContext) -> bool:
    """True when the request continues a license session the CDM names (cheap: no I/O)."""
    info = ctx.challenge
    return info is not None and info.request_type in CONTINUING and license_id(info) is not None


def _valid_at(times: TokenTimes, leeway: float, instant: float) -> bool:
    if times.exp + leeway <= instant:
        return False
    return times.nbf is None or times.nbf - leeway <= instant


async def renew_after_expiry(
    ctx: RequestContext, verifier: TokenVerifier, token: str, expired: ProxyError
) -> Principal:
    """The principal of an expired ``token`` for this renewal or release, when the issuer's
    ``renewal_grace`` covers it; else ``expired`` (TOKEN_EXPIRED) is raised again.

    :raises ProxyError: TOKEN_EXPIRED; STATE_UNAVAILABLE when the record can't be read.
    """
    try:
        principal, times = await verifier.verify_past_expiry(token)
    except ProxyError:
        # The checks' order makes an expired token TOKEN_EXPIRED whatever else is wrong.
        raise expired from None
    leeway = principal.leeway or 0.0
    now = ctx.services.clock.time()
    if principal.renewal_grace <= 0:
        raise expired
    if times.exp + leeway + principal.renewal_grace <= now:
        raise ProxyError(
            Reason.TOKEN_EXPIRED, "the token has expired, and its issuer's renewal grace is over"
        )
    try:
        session = await find_session(ctx, principal)
    except StateUnavailable:
        raise ProxyError(
            Reason.STATE_UNAVAILABLE,
            "the token has expired, and the state store can't be asked whether this renews "
            "a session it licensed; try again shortly",
            retry_after=1,
        ) from None
    if session is None:
        raise ProxyError(
            Reason.TOKEN_EXPIRED,
            "the token has expired, and the request continues no license session this proxy "
            "issued to it",
        )
    if not _valid_at(times, leeway, session.started):
        raise ProxyError(
            Reason.TOKEN_EXPIRED,
            "the token has expired, and it was not valid when the session began",
        )
    ctx.license_session = session
    ctx.note(f"expired token accepted within the renewal grace of issuer {principal.issuer}")
    return dataclasses.replace(principal, accepted_after_expiry=True)


__all__ = ["may_renew_after_expiry", "renew_after_expiry"]
