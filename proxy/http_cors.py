"""CORS for browser players: which origins, and the headers a preflight allows."""

from __future__ import annotations

from aiohttp import web

from proxy.config import ServerConfig

BASE_ALLOW_HEADERS = ("Authorization", "Content-Type", "X-Request-Id", "SOAPAction")
BASE_EXPOSE_HEADERS = ("X-Request-Id", "Retry-After")


class Cors:
    """CORS for browser players: which origins, and the headers a preflight allows."""

    def __init__(self, server: ServerConfig, extra_headers: tuple[str, ...] = ()) -> None:
        config = server.cors
        self.any_origin = "*" in config.allow_origins
        self.origins = frozenset(config.allow_origins)
        headers = [*BASE_ALLOW_HEADERS, *extra_headers, *config.allow_headers]
        # `*` would not cover Authorization, so the list is always explicit.
        self.allow_headers = ", ".join(dict.fromkeys(headers))
        self.expose_headers = ", ".join(
            dict.fromkeys([*BASE_EXPOSE_HEADERS, *config.expose_headers])
        )
        self.max_age = str(config.max_age)

    def allowed_origin(self, origin: str | None) -> str | None:
        """The ``Access-Control-Allow-Origin`` value for ``origin``, or None."""
        if origin is None:
            return None
        if self.any_origin:
            return "*"
        return origin if origin in self.origins else None

    def apply(self, request: web.Request, response: web.StreamResponse) -> None:
        """Add the CORS answer headers for a simple (non-preflight) request."""
        allowed = self.allowed_origin(request.headers.get("Origin"))
        if allowed is not None:
            response.headers["Access-Control-Allow-Origin"] = allowed
            response.headers["Access-Control-Expose-Headers"] = self.expose_headers
            if allowed != "*":
                response.headers["Vary"] = "Origin"

    def preflight(self, request: web.Request) -> web.Response:
        """The answer to an ``OPTIONS`` preflight."""
        response = web.Response(status=204)
        allowed = self.allowed_origin(request.headers.get("Origin"))
        if allowed is not None:
            response.headers["Access-Control-Allow-Origin"] = allowed
            response.headers["Access-Control-Allow-Methods"] = "POST, GET, OPTIONS"
            response.headers["Access-Control-Allow-Headers"] = self.allow_headers
            response.headers["Access-Control-Max-Age"] = self.max_age
            if allowed != "*":
                response.headers["Vary"] = "Origin"
        return response


__all__ = ["BASE_ALLOW_HEADERS", "BASE_EXPOSE_HEADERS", "Cors"]
