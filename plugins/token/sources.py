"""Where a request's token is found: the gRPC field, ``Authorization: Bearer``, a configured
header or query parameter, in that order."""

from __future__ import annotations

from plugins.token.config import AuthConfig
from proxy.errors import ProxyError, Reason
from proxy.model import LicenseRequest


def find_token(request: LicenseRequest, settings: AuthConfig) -> str | None:
    """The token the request presents, or None when it presents none."""
    if request.token:
        return request.token
    authorization = request.headers.get("authorization")
    if authorization:
        scheme, _, value = authorization.strip().partition(" ")
        if scheme.lower() != "bearer" or not value.strip():
            raise ProxyError(
                Reason.TOKEN_MALFORMED, "the Authorization header is not a Bearer token"
            )
        return value.strip()
    if settings.header:
        value = request.headers.get(settings.header)
        if value:
            return value.strip()
    if settings.query_parameter:
        value = request.query.get(settings.query_parameter)
        if value:
            return value.strip()
    return None
