"""gRPC access log lines: one per call of the proxy's service, as the HTTP bridge writes them.

A line: peer address, method, status code, reason code (``-`` when none), time;
the request id comes with every log line (``proxy.logs``). Never metadata, so
never a token.
"""

from __future__ import annotations

import logging
import time

log = logging.getLogger("proxy.grpc.access")


def log_call(
    method: str, peer: str | None, status: str, reason: str | None, started: float
) -> None:
    """Write the line of one finished call (``started`` from ``time.perf_counter()``)."""
    log.info(
        "%s %s %s %s %.1fms",
        peer or "-",
        method,
        status,
        reason or "-",
        (time.perf_counter() - started) * 1000,
    )


__all__ = ["log_call"]
