"""Where a request's token is found: the gRPC ``token`` field, ``Authorization: Bearer``
(HTTP header or gRPC metadata), a configured header, a configured query parameter, a
configured cookie, in that order. Only finding happens here; the size limit and every
check are the verifier's.

A cookie is the one source a browser attaches by itself: a page of any origin can make
the user's browser send it (a ``<form>`` POST, or a ``fetch`` with credentials, and shaka
sends ClearKey license POSTs with no preflight). The browser hides the answer from a
foreign page, but the license would still be issued, and a single-use token or a session
slot spent. So a token read from a cookie is used only when the request's ``Origin`` is
one the CORS config allows; a request with no ``Origin`` is not a cross-origin browser
request (browsers send ``Origin`` on every cross-origin request and every POST).
"""

from __future__ import annotations

from collections.abc import Mapping

from plugins.token.config import AuthConfig
from proxy import ProxyError, Reason
from proxy.model import LicenseRequest


def _bearer(authorization: str) -> str | None:
    scheme, _, value = authorization.strip().partition(" ")
    value = value.strip()
    if scheme.lower() != "bearer" or not value:
        return None
    return value


def _header_values(headers: Mapping[str, str], name: str) -> list[str]:
    getall = getattr(headers, "getall", None)
    if getall is not None:
        return list(getall(name, ()))
    value = headers.get(name)
    return [value] if value is not None else []


def cookie_value(headers: Mapping[str, str], name: str) -> str | None:
    """The first cookie called ``name`` in the ``Cookie`` header(s), or None.

    Split the way browsers write the header (``a=1; b=2``, RFC 6265 section 4.2.1),
    pair by pair: ``http.cookies.SimpleCookie`` stops at the first pair it can't read,
    and a site's other cookies (analytics, JSON values) must not hide the token.
    """
    for header in _header_values(headers, "cookie"):
        for pair in header.split(";"):
            key, sep, value = pair.partition("=")
            if sep and key.strip() == name:
                value = value.strip()
                if len(value) >= 2 and value[0] == value[-1] == '"':
                    value = value[1:-1]
                return value or None
    return None


def find_token(
    request: LicenseRequest, settings: AuthConfig, *, origins: frozenset[str] = frozenset()
) -> str | None:
    """The token the request presents, or None when it presents none.

    An ``Authorization`` header of another scheme (Basic, say) is TOKEN_MALFORMED,
    unless the configured header, query parameter or cookie carries the token.

    :param origins: the web page origins allowed to use a token cookie
        (``server.cors.allow_origins``).
    :raises ProxyError: ORIGIN_NOT_ALLOWED for a token cookie sent from another origin.
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
    if settings.cookie:
        cookie = cookie_value(request.headers, settings.cookie)
        if cookie:
            origin = request.headers.get("origin")
            if origin is not None and origin not in origins:
                raise ProxyError(
                    Reason.ORIGIN_NOT_ALLOWED,
                    "a token cookie is not accepted from this web page's origin "
                    "(server.cors.allow_origins)",
                )
            return cookie
    if authorization:
        raise ProxyError(Reason.TOKEN_MALFORMED, "the Authorization header is not a Bearer token")
    return None
