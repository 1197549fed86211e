"""gRPC core settings that only the environment can carry, set before grpc is imported.

grpcio reads ``GRPC_EXPERIMENTS`` once, when its extension module loads; setting it
afterwards changes nothing. So :mod:`proxy` applies :func:`apply` first thing, before
any of its modules imports grpc. An operator's own ``GRPC_EXPERIMENTS`` wins: it is
left exactly as set (an empty value included), so the old behaviour is one variable away.

``-event_engine_listener``: grpc.aio's server accepts connections on grpc core's legacy
TCP listener instead of the EventEngine one. With the EventEngine listener each
connection's reads and writes run on core's ``event_engine`` threads, which then hand
every completion to grpc.aio's poller thread (a futex wake-up), which wakes the event
loop through a socket: two thread hand-offs per completion, four completions per unary
call. On the legacy listener the poller thread does the socket I/O itself while it waits
on the completion queue: one hand-off less. Measured on the proxy's embedded default
(bench/RESULTS.md, "gRPC: where the surcharge goes"): about 4 system calls and half the
context switches less per call, 15-20 us less system time per call in every run (the
total CPU moved within this shared machine's noise); user-space instructions unchanged.
"""

from __future__ import annotations

import os
from collections.abc import MutableMapping

#: What the proxy sets when the environment has no ``GRPC_EXPERIMENTS``.
GRPC_EXPERIMENTS_DEFAULT = "-event_engine_listener"


def apply(environ: MutableMapping[str, str] | None = None) -> None:
    """Set the proxy's gRPC core defaults in ``environ`` (the process environment), each
    only where the operator set nothing."""
    target = os.environ if environ is None else environ
    target.setdefault("GRPC_EXPERIMENTS", GRPC_EXPERIMENTS_DEFAULT)


__all__ = ["GRPC_EXPERIMENTS_DEFAULT", "apply"]
