"""Slow and greedy HTTP clients: a deadline for a request's headers, a cap per client address.

aiohttp bounds a request's headers only by its keep-alive timeout
(``server.http_idle_timeout``, 75 s by default), so a client dripping header
bytes holds a connection that long, and nothing limits how many connections
one address opens. :class:`ConnectionLimits` holds the two settings of
``[server]`` that close that door, and the count of open connections per
client address; :class:`proxy.http_protocol.ProblemRequestHandler` applies
them to each connection:

- ``header_timeout``: from the first byte of a request until its headers are
  complete; a request still in its headers then is answered 408
  (REQUEST_INVALID) and the connection closed. An idle keep-alive connection
  (no byte of a next request yet) is left to ``http_idle_timeout``.
- ``max_connections_per_client``: a connection beyond it from the same address
  is answered 429 (RATE_LIMITED, ``Retry-After``) and closed at once. Addresses in
  ``trusted_proxies`` are exempt: a load balancer carries many clients.
"""

from __future__ import annotations

import json
from collections import Counter
from http import HTTPStatus

from proxy.clientaddr import normalize_ip
from proxy.config import ServerConfig
from proxy.errors import ProxyError, Reason
from proxy.http_problems import PROBLEM_TYPE, retry_after_seconds
from proxy.logs import new_request_id

#: How long a client over the cap is asked to wait before opening another connection.
OVER_CAP_RETRY_AFTER = 1.0


class ConnectionLimits:
    """One HTTP listener's connection limits and its open connections per client address."""

    def __init__(self, server: ServerConfig) -> None:
        self.header_timeout = server.header_timeout
        self.max_per_client = server.max_connections_per_client
        self._server = server
        self._open: Counter[str] = Counter()

    def admit(self, peer: str | None) -> str | None:
        """Count a new connection from ``peer`` (an address as the socket gives it). Returns
        the key to :meth:`release` it with, or None when it is over the cap (refuse it)."""
        address = normalize_ip(peer) or "-"
        if (
            self.max_per_client
            and self._open[address] >= self.max_per_client
            and not self._server.is_trusted(address)
        ):
            return None
        self._open[address] += 1
        return address

    def release(self, address: str) -> None:
        """Forget a connection :meth:`admit` counted."""
        self._open[address] -= 1
        if self._open[address] <= 0:
            del self._open[address]

    def open_connections(self, peer: str) -> int:
        """How many connections ``peer`` has open now."""
        return self._open.get(normalize_ip(peer) or "-", 0)

    def over_cap(self) -> bytes:
        """The answer to a connection over the cap."""
        error = ProxyError(
            Reason.RATE_LIMITED,
            f"more than {self.max_per_client} connections from this address are open",
            retry_after=OVER_CAP_RETRY_AFTER,
        )
        return raw_problem(error, 429)

    def headers_too_slow(self) -> bytes:
        """The answer to a request whose headers did not arrive in time."""
        error = ProxyError(
            Reason.REQUEST_INVALID,
            f"the request headers did not arrive within {self.header_timeout:g} s",
        )
        return raw_problem(error, 408)


def raw_problem(error: ProxyError, status: int) -> bytes:
    """A whole HTTP/1.1 problem+json answer that closes the connection, for the moments no
    aiohttp request exists to answer through (the connection's own limits)."""
    request_id = new_request_id()
    body = json.dumps(
        {
            "type": "about:blank",
            "title": error.reason.title,
            "status": status,
            "detail": error.detail,
            "reason": error.reason.value,
            "request_id": request_id,
        }
    ).encode()
    head = [
        f"HTTP/1.1 {status} {HTTPStatus(status).phrase}",
        f"Content-Type: {PROBLEM_TYPE}; charset=utf-8",
        f"Content-Length: {len(body)}",
        "Connection: close",
        f"X-Request-Id: {request_id}",
    ]
    if error.retry_after is not None:
        head.append(f"Retry-After: {retry_after_seconds(error.retry_after)}")
    return ("\r\n".join(head) + "\r\n\r\n").encode() + body


__all__ = ["ConnectionLimits", "raw_problem"]
