"""aiohttp's connection level, held to the proxy's error model and logging rules.

What goes wrong before a request reaches the bridge's middleware (a header or
request line over the parser's limits, a control character, broken chunked
framing, garbage instead of HTTP) is answered by aiohttp's
``RequestHandler.handle_error``, which by default writes a ``text/plain`` 400
quoting the offending input and logs it at ERROR with a traceback. Tokens
travel in exactly those headers and query strings, so here:

- :class:`ProblemRequestHandler` answers every such error with problem+json
  (``REQUEST_INVALID``, or ``INTERNAL`` for a 500) and a fresh request id,
  quoting nothing, and logs one line naming the error's kind only;
- :class:`ProxyAppRunner` makes aiohttp build that handler for each connection
  (aiohttp 3.14 has no public setting for it; the runner's ``_make_server``
  is the one seam);
- :class:`RequestDataFilter` strips exception text and tracebacks from the
  records of aiohttp's own server loggers, whatever else logs through them.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any, cast

from aiohttp import http_exceptions, web
from aiohttp.web_protocol import RequestHandler

from proxy.config import ServerConfig
from proxy.connlimits import ConnectionLimits
from proxy.errors import ProxyError, Reason
from proxy.http_problems import problem
from proxy.logs import new_request_id, request_id_var

log = logging.getLogger("proxy.http")

#: aiohttp's loggers that may carry request data in exception text.
AIOHTTP_SERVER_LOGGERS = ("aiohttp.server", "aiohttp.web")


def header_limit(server: ServerConfig) -> int:
    """aiohttp's ``max_line_size`` and ``max_field_size``: well above ``max_token_bytes``, so
    an oversize token in a header or the query string meets TOKEN_MALFORMED, not the parser."""
    return 2 * server.max_token_bytes + 16 * 1024


def _parse_error_detail(exc: BaseException | None, limit: int) -> str:
    """A fixed sentence per kind of parser error; never the input the parser quotes."""
    if isinstance(exc, http_exceptions.LineTooLong):
        return f"the request line or a header is longer than {limit} bytes"
    if isinstance(exc, http_exceptions.PayloadEncodingError):
        return "the request body's framing or encoding is broken"
    if isinstance(exc, http_exceptions.BadStatusLine | http_exceptions.BadHttpMethod):
        return "the request line is not valid HTTP"
    if isinstance(exc, http_exceptions.InvalidURLError):
        return "the request target is not a valid URL"
    if isinstance(exc, http_exceptions.InvalidHeader):
        return "a request header is not valid"
    return "the request is not valid HTTP"


class ProblemRequestHandler(RequestHandler):
    """aiohttp's per-connection protocol, answering its own errors with problem+json, and
    holding each connection to the listener's :class:`~proxy.connlimits.ConnectionLimits`."""

    limits: ConnectionLimits | None = None
    _counted_as: str | None = None
    _header_timer: asyncio.TimerHandle | None = None
    _last_payload: Any = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        """Count the connection against its client address's cap; refuse it when over."""
        super().connection_made(transport)
        if self.limits is None:
            return
        peer = transport.get_extra_info("peername")
        self._counted_as = self.limits.admit(peer[0] if peer else None)
        if self._counted_as is None:
            log.info(
                "HTTP connection from %s refused: over server.max_connections_per_client (%d)",
                peer[0] if peer else "-",
                self.limits.max_per_client,
            )
            cast(asyncio.Transport, transport).write(self.limits.over_cap())
            self.force_close()

    def connection_lost(self, exc: BaseException | None) -> None:
        """Give the connection's place back."""
        if self._header_timer is not None:
            self._header_timer.cancel()
            self._header_timer = None
        if self._counted_as is not None and self.limits is not None:
            self.limits.release(self._counted_as)
            self._counted_as = None
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        """Parse as aiohttp does; start the header deadline at a request's first byte and
        stop it when its headers are complete."""
        previous_done = self._last_payload is None or self._last_payload.is_eof()
        count = self._request_count
        super().data_received(data)
        if self.limits is None:
            return
        if self._request_count != count:
            if self._messages:
                self._last_payload = self._messages[-1][1]
            if self._header_timer is not None:
                self._header_timer.cancel()
                self._header_timer = None
        elif data and previous_done and self._header_timer is None and not self._force_close:
            self._header_timer = self._loop.call_later(
                self.limits.header_timeout, self._headers_too_slow
            )

    def _headers_too_slow(self) -> None:
        self._header_timer = None
        if self.limits is None or self._request_in_progress or self._messages:
            return
        if self.transport is not None and not self._force_close:
            log.info(
                "HTTP request headers from %s did not arrive within server.header_timeout",
                _peer(self.transport),
            )
            self.transport.write(self.limits.headers_too_slow())
            self.force_close()

    def handle_error(
        self,
        request: web.BaseRequest,
        status: int = 500,
        exc: BaseException | None = None,
        message: str | None = None,
    ) -> web.StreamResponse:
        """Answer an error aiohttp met outside the application: problem+json, input not echoed."""
        request_id = new_request_id()
        if status >= 500:
            error = ProxyError(Reason.INTERNAL, "the server failed to handle the request")
        else:
            detail = _parse_error_detail(exc, self.max_field_size)
            error = ProxyError(Reason.REQUEST_INVALID, detail)
        token = request_id_var.set(request_id)
        try:
            kind = type(exc).__name__ if exc is not None else f"HTTP {status}"
            level = logging.ERROR if status >= 500 else logging.INFO
            # The kind of error only: aiohttp's message quotes the request line or header.
            log.log(level, "HTTP request from %s refused by the server: %s", request.remote, kind)
        finally:
            request_id_var.reset(token)
        if request.writer.output_size > 0:
            # Part of an answer is on the wire: nothing else can be sent (aiohttp's own rule).
            raise ConnectionError("an answer was already started; closing the connection")
        response = problem(error, request_id, status=status)
        response.headers["X-Request-Id"] = request_id
        response.force_close()
        return response

    async def shutdown(self, timeout: float | None = 15.0) -> None:  # noqa: ASYNC109 (aiohttp's)
        """aiohttp's drain of this connection, bounded by ``timeout`` as a whole: aiohttp waits
        ``timeout`` for the handler, then cancels it and waits ``timeout`` again. Requests
        in flight are answered at the shutdown deadline (:mod:`proxy.shutdown`), so this
        only cuts a handler that ignored its cancellation."""
        if timeout is None:
            await super().shutdown(timeout)
            return
        try:
            async with asyncio.timeout(timeout):
                await super().shutdown(timeout)
        except TimeoutError:
            log.warning("an HTTP request did not end within the shutdown grace; connection closed")
            if self._task_handler is not None:
                self._task_handler.cancel()
            self.force_close()

    def log_exception(self, *args: Any, **kw: Any) -> None:
        """aiohttp's "Unhandled exception" lines: a client's broken body, met again while
        aiohttp drains it after the answer went out, is the client's fault and already
        answered, so it is a debug line; anything else stays an error (filtered by
        :class:`RequestDataFilter`)."""
        exc = kw.get("exc_info")
        if isinstance(exc, web.RequestPayloadError | http_exceptions.HttpProcessingError):
            self.logger.debug("the rest of a broken request body was dropped")
            return
        super().log_exception(*args, **kw)


class ProblemServer(web.Server):
    """aiohttp's low-level server, building a :class:`ProblemRequestHandler` per connection."""

    limits: ConnectionLimits | None = None

    def __call__(self) -> RequestHandler:
        handler = ProblemRequestHandler(self, loop=self._loop, **self._kwargs)
        handler.limits = self.limits
        return handler


class ProxyAppRunner(web.AppRunner):
    """An ``AppRunner`` whose connections answer aiohttp's own errors with problem+json.

    :param limits: the header deadline and per-client cap its connections keep to.
    """

    def __init__(
        self, app: web.Application, *, limits: ConnectionLimits | None = None, **kwargs: Any
    ) -> None:
        super().__init__(app, **kwargs)
        self.limits = limits

    async def _make_server(self) -> web.Server:
        base = await super()._make_server()
        try:
            server = ProblemServer(
                base.request_handler,
                request_factory=base.request_factory,
                handler_cancellation=base.handler_cancellation,
                loop=base._loop,
                **base._kwargs,
            )
            server.limits = self.limits
            return server
        except (AttributeError, TypeError):
            # A future aiohttp moved these internals: keep serving with its own error
            # answers (RequestDataFilter still keeps request data out of the logs).
            log.warning("aiohttp's server internals changed: parser errors use its own answers")
            return base


class RequestDataFilter(logging.Filter):
    """Keeps request data out of aiohttp's server logs: a record's exception becomes its
    class name, and its traceback (whose message quotes header values and URLs) is dropped."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.exc_info or record.exc_text:
            exc = record.exc_info[1] if record.exc_info else None
            name = type(exc).__name__ if exc is not None else "an error"
            record.msg = (
                f"{record.getMessage()} ({name}; details withheld: they may quote the request)"
            )
            record.args = None
            record.exc_info = None
            record.exc_text = None
            record.stack_info = None
        return True


def _peer(transport: asyncio.BaseTransport) -> str:
    peer = transport.get_extra_info("peername")
    return str(peer[0]) if peer else "-"


def install_log_filters() -> None:
    """Add :class:`RequestDataFilter` to aiohttp's server loggers (once)."""
    for name in AIOHTTP_SERVER_LOGGERS:
        logger = logging.getLogger(name)
        if not any(isinstance(f, RequestDataFilter) for f in logger.filters):
            logger.addFilter(RequestDataFilter())


def runner_options(server: ServerConfig) -> dict[str, Any]:
    """The protocol settings the HTTP listener is built with."""
    limit = header_limit(server)
    return {
        "max_line_size": limit,
        "max_field_size": limit,
        "keepalive_timeout": server.http_idle_timeout,
    }


__all__ = [
    "ProblemRequestHandler",
    "ProblemServer",
    "ProxyAppRunner",
    "RequestDataFilter",
    "header_limit",
    "install_log_filters",
    "runner_options",
]
