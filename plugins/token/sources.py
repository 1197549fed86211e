"""Where a request's token is found: the gRPC ``token`` field, ``Authorization: Bearer``
(HTTP header or gRPC metadata), a configured header, a configured query parameter, in that
order. Only finding happens here; the size limit and every check are the verifier's."""

from __future__ import annotations

from plugins.token.config import AuthConfig
from proxy import ProxyError, Reason
from proxy.model import LicenseRequest


def _bearer(authorization: str) -> str | None:
    scheme, _, value = authorization.strip().partition(" ")
    value = value.strip()
    if scheme.lower() != "bearer" or not value:
        return None
    return value


def find_token(request: LicenseRequest, settings: AuthConfig) -> str | None:
    """The token the request presents, or None when it presents none.

    An ``Authorization`` header of another scheme (Basic, say) is TOKEN_MALFORMED,
    unless the configured header or query parameter carries the token.
    """
    if request.token:
        return request.token
    authorization = request.headers.get("authorization")
    if authorization:
        token = _bearer(authorization)
        if token is not None:
            return token
    if settings.header:
        value = request.headers.get(settings.header, "").strip()
        if value:
            return _bearer(value) or value
    if settings.query_parameter:
        value = request.query.get(settings.query_parameter, "").strip()
        if value:
            return value
    if authorization:
        raise ProxyError(Reason.TOKEN_MALFORMED, "the Authorization header is not a Bearer token")
    return None
