"""CORS for browser players: which origins, credentials, and the headers a preflight allows.

With ``allow_credentials`` the allowed origin is echoed and
``Access-Control-Allow-Credentials: true`` added, so a player in credentials mode
(cookies, or dash.js, which turns credentials on whenever its license request carries
an ``Authorization`` header) may read the answer. A browser refuses a credentialed
answer whose ``Access-Control-Allow-Origin`` is ``*``; the config refuses the pair.
"""

from __future__ import annotations

from aiohttp import hdrs, web

from proxy.config import ServerConfig

BASE_ALLOW_HEADERS = ("Authorization", "Content-Type", "X-Request-Id", "SOAPAction")
BASE_EXPOSE_HEADERS = ("X-Request-Id", "Retry-After")


class Cors:
    """CORS for browser players: which origins, and the headers a preflight allows."""

    def __init__(self, server: ServerConfig, extra_headers: tuple[str, ...] = ()) -> None:
        config = server.cors
        self.any_origin = "*" in config.allow_origins
        self.origins = frozenset(config.allow_origins)
        self.credentials = config.allow_credentials and not self.any_origin
        headers = [*BASE_ALLOW_HEADERS, *extra_headers, *config.allow_headers]
        # `*` would not cover Authorization, so the list is always explicit.
        self.allow_headers = ", ".join(dict.fromkeys(headers))
        self.expose_headers = ", ".join(
            dict.fromkeys([*BASE_EXPOSE_HEADERS, *config.expose_headers])
        )
        self.max_age = str(config.max_age)

    def allows(self, origin: str | None) -> bool:
        """True when a page of ``origin`` may read the proxy's answers."""
        return origin is not None and (self.any_origin or origin in self.origins)

    def allowed_origin(self, origin: str | None) -> str | None:
        """The ``Access-Control-Allow-Origin`` value for ``origin``, or None."""
        if not self.allows(origin):
            return None
        return "*" if self.any_origin else origin

    def _vary(self, response: web.StreamResponse) -> None:
        # The answer depends on Origin whenever origins are named: caches must know it,
        # for refused origins too (else a cached refusal could reach an allowed page).
        if self.any_origin or not self.origins:
            return
        present = response.headers.get(hdrs.VARY, "")
        if "origin" not in {part.strip().lower() for part in present.split(",")}:
            response.headers[hdrs.VARY] = f"{present}, Origin" if present else "Origin"

    def _grant(self, response: web.StreamResponse, allowed: str) -> None:
        response.headers[hdrs.ACCESS_CONTROL_ALLOW_ORIGIN] = allowed
        if self.credentials:
            response.headers[hdrs.ACCESS_CONTROL_ALLOW_CREDENTIALS] = "true"

    def apply(self, request: web.Request, response: web.StreamResponse) -> None:
        """Add the CORS answer headers for a simple (non-preflight) request."""
        self._vary(response)
        allowed = self.allowed_origin(request.headers.get(hdrs.ORIGIN))
        if allowed is not None:
            self._grant(response, allowed)
            response.headers[hdrs.ACCESS_CONTROL_EXPOSE_HEADERS] = self.expose_headers

    def preflight(self, request: web.Request) -> web.Response:
        """The answer to an ``OPTIONS`` preflight."""
        response = web.Response(status=204)
        self._vary(response)
        allowed = self.allowed_origin(request.headers.get(hdrs.ORIGIN))
        if allowed is not None:
            self._grant(response, allowed)
            response.headers[hdrs.ACCESS_CONTROL_ALLOW_METHODS] = "POST, GET, OPTIONS"
            response.headers[hdrs.ACCESS_CONTROL_ALLOW_HEADERS] = self.allow_headers
            response.headers[hdrs.ACCESS_CONTROL_MAX_AGE] = self.max_age
        return response


__all__ = ["BASE_ALLOW_HEADERS", "BASE_EXPOSE_HEADERS", "Cors"]
