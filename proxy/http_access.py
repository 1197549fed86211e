"""HTTP access log lines that never carry a token: no query string, no headers.

A line: client address, method, path, status, reason code (``-`` when none), time.
"""

from __future__ import annotations

from urllib.parse import quote

from aiohttp import web
from aiohttp.abc import AbstractAccessLogger

from proxy.http_problems import REASON
from proxy.logs import request_id_var


class RedactingAccessLogger(AbstractAccessLogger):
    """Access log lines with no query string (tokens travel there) and no headers, with the
    reason code of a refusal (``POST /v1/licenses/clearkey 401 TOKEN_EXPIRED 1.6ms``)."""

    def log(self, request: web.BaseRequest, response: web.StreamResponse, time: float) -> None:
        token = request_id_var.set(response.headers.get("X-Request-Id", "-"))
        try:
            self._log(request, response, time)
        finally:
            request_id_var.reset(token)

    def _log(self, request: web.BaseRequest, response: web.StreamResponse, time: float) -> None:
        self.logger.info(
            "%s %s %s %s %s %.1fms",
            request.remote,
            request.method,
            loggable_path(request.raw_path),
            response.status,
            response.get(REASON, "-"),
            time * 1000,
        )


#: What stays as it is in a logged path: the characters RFC 3986 allows in one, ``%`` included
#: (so what the client percent-encoded stays encoded, never decoded into a line break).
_PATH_SAFE = "/%:@!$&'()*+,;=-._~"


def loggable_path(raw_path: str) -> str:
    """The request path as received, without the query string (tokens travel there), with
    anything outside RFC 3986's path characters percent-encoded: a log line can't be split
    or forged through the path."""
    return quote(raw_path.partition("?")[0].partition("#")[0], safe=_PATH_SAFE)


__all__ = ["RedactingAccessLogger", "loggable_path"]
