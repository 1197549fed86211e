"""Who is calling the admin API: an operator with an admin token (``[admin.token]``).

Credentials are checked by small authenticators tried in order; the first that
recognises the request answers. Today one reads ``Authorization: Bearer`` and
verifies the admin issuer's token; a client-certificate authenticator (the
identity a verified mTLS peer presents, ``admin.tls`` with ``client_ca``) slots
in beside it when the listeners speak TLS.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import jwt
from aiohttp import web

from proxy.admin.settings import AdminTokenSettings, decode_admin_token
from proxy.errors import ProxyError, Reason

#: Longest admin token read (a larger one is TOKEN_MALFORMED, never parsed).
MAX_ADMIN_TOKEN_BYTES = 8 * 1024


@dataclass(frozen=True, slots=True)
class Operator:
    """An authenticated admin caller.

    :ivar name: who, for the decision log: ``token:<sub>`` or ``mtls:<identity>``.
    """

    name: str


class Authenticator(Protocol):
    """One way to authenticate an admin request: None when the request doesn't use it,
    an :class:`Operator`, or :class:`ProxyError` when it does and fails."""

    def authenticate(self, request: web.Request) -> Operator | None:
        """The operator behind ``request``, or None when this method doesn't apply."""
        ...


_JWT_ERRORS: tuple[tuple[type[Exception], Reason], ...] = (
    (jwt.ExpiredSignatureError, Reason.TOKEN_EXPIRED),
    (jwt.ImmatureSignatureError, Reason.TOKEN_NOT_YET_VALID),
    (jwt.InvalidAudienceError, Reason.TOKEN_AUDIENCE_MISMATCH),
    (jwt.InvalidIssuerError, Reason.TOKEN_ISSUER_MISMATCH),
    (jwt.InvalidAlgorithmError, Reason.TOKEN_ALGORITHM_REJECTED),
    (jwt.InvalidSignatureError, Reason.TOKEN_SIGNATURE_INVALID),
    (jwt.MissingRequiredClaimError, Reason.TOKEN_CLAIM_MISSING),
    (jwt.InvalidIssuedAtError, Reason.TOKEN_NOT_YET_VALID),
)


class AdminTokenAuthenticator:
    """``Authorization: Bearer <admin token>``, verified with the admin issuer's key."""

    def __init__(self, settings: AdminTokenSettings) -> None:
        self.settings = settings

    def authenticate(self, request: web.Request) -> Operator | None:
        """The token's ``sub`` as the operator; None without a Bearer token."""
        header = request.headers.get("Authorization", "")
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            return None
        token = token.strip()
        if len(token) > MAX_ADMIN_TOKEN_BYTES:
            raise ProxyError(Reason.TOKEN_MALFORMED, "the admin token is too large")
        try:
            claims = decode_admin_token(token, self.settings)
        except jwt.PyJWTError as exc:
            for kind, reason in _JWT_ERRORS:
                if isinstance(exc, kind):
                    raise ProxyError(reason, f"admin token refused: {reason.title}") from None
            raise ProxyError(Reason.TOKEN_MALFORMED, "admin token refused: not a JWS") from None
        subject = claims.get("sub")
        if not isinstance(subject, str) or not subject.strip() or len(subject) > 256:
            raise ProxyError(Reason.TOKEN_CLAIM_MISSING, "the admin token names no operator (sub)")
        lifetime = claims["exp"] - claims["iat"]
        if lifetime > self.settings.max_lifetime:
            raise ProxyError(
                Reason.TOKEN_MALFORMED,
                f"admin tokens may live at most {self.settings.max_lifetime:g} s",
            )
        return Operator(f"token:{subject.strip()}")


def authenticate(request: web.Request, methods: list[Authenticator]) -> Operator:
    """The operator behind ``request``; TOKEN_MISSING when no method applies."""
    for method in methods:
        operator = method.authenticate(request)
        if operator is not None:
            return operator
    if not methods:
        raise ProxyError(
            Reason.TOKEN_MISSING,
            "the admin API has no credential configured (admin.token): every route is refused",
        )
    raise ProxyError(Reason.TOKEN_MISSING, "send an admin token: Authorization: Bearer ...")


__all__ = ["AdminTokenAuthenticator", "Authenticator", "Operator", "authenticate"]
