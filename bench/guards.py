"""What the transports' per-request guards cost: ``python -m bench.guards``.

Issue 15 put three things on every gRPC call and one on every HTTP request:
the shutdown drain's deadline (:class:`proxy.shutdown.Drain`, both
transports), parsing the request message in the interceptor rather than in
grpc's Cython layer (:func:`proxy.grpc_server.parse_request`), and the count
of metadata entries (:func:`proxy.grpc_limits.check_metadata`). Each is timed
against the same work without it, in CPU time of this process, best of 5.
"""

from __future__ import annotations

import argparse
import asyncio
import time
import uuid
from collections.abc import Awaitable, Callable

from licenseproxy.v1 import license_proxy_pb2 as pb
from proxy.grpc_limits import check_metadata
from proxy.grpc_server import parse_request
from proxy.shutdown import Drain

KID = uuid.UUID(int=1).bytes
#: The metadata a grpc client sends with a call, plus a token and a request id.
METADATA = (
    ("user-agent", "grpc-python-asyncio/1.85.0 grpc-c/48.0.0 (linux; chttp2)"),
    ("authorization", "Bearer " + "e" * 400),
    ("x-request-id", "0123456789abcdef"),
)


def _best(fn: Callable[[], None], repeat: int) -> float:
    best = float("inf")
    for _ in range(repeat):
        start = time.process_time()
        fn()
        best = min(best, time.process_time() - start)
    return best


async def _noop() -> None:
    return None


def _drain_cost(count: int, repeat: int) -> tuple[float, float]:
    drain = Drain()

    async def bare() -> None:
        for _ in range(count):
            await _noop()

    async def guarded() -> None:
        for _ in range(count):
            async with drain.request():
                await _noop()

    def timed(body: Callable[[], Awaitable[None]]) -> Callable[[], None]:
        return lambda: asyncio.run(body())  # type: ignore[arg-type]

    return _best(timed(bare), repeat), _best(timed(guarded), repeat)


def _parse_cost(count: int, repeat: int) -> tuple[float, float]:
    raw = pb.AcquireLicenseRequest(
        drm_system=pb.DRM_SYSTEM_CLEARKEY,
        challenge=b'{"kids":["AAAAAAAAAAAAAAAAAAAAAQ"],"type":"temporary"}',
        token="e" * 400,
        content_id="movie-1",
    ).SerializeToString()
    parse = pb.AcquireLicenseRequest.FromString

    def direct() -> None:
        for _ in range(count):
            parse(raw)

    def wrapped() -> None:
        for _ in range(count):
            parse_request(parse, raw, "AcquireLicense")

    return _best(direct, repeat), _best(wrapped, repeat)


def _metadata_cost(count: int, repeat: int) -> float:
    def checked() -> None:
        for _ in range(count):
            check_metadata(METADATA)

    return _best(checked, repeat)


def run(args: argparse.Namespace) -> str:
    """The Markdown table of each guard's cost per request."""
    n, r = args.count, args.repeat
    bare, guarded = _drain_cost(n, r)
    direct, wrapped = _parse_cost(n, r)
    metadata = _metadata_cost(n, r)
    us = 1e6 / n
    rows = [
        ("shutdown drain (both transports)", bare * us, guarded * us),
        ("request parsed in the interceptor (gRPC)", direct * us, wrapped * us),
        ("metadata entries counted (gRPC)", 0.0, metadata * us),
    ]
    lines = [
        f"CPU microseconds per request, best of {r} x {n}",
        "",
        "| guard | without | with | added |",
        "| --- | ---: | ---: | ---: |",
    ]
    lines += [f"| {name} | {a:.2f} | {b:.2f} | {b - a:.2f} |" for name, a, b in rows]
    return "\n".join(lines)


def parser() -> argparse.ArgumentParser:
    """The command line of ``python -m bench.guards``."""
    p = argparse.ArgumentParser(prog="python -m bench.guards", description=__doc__)
    p.add_argument("--count", type=int, default=100_000, help="calls per timed run")
    p.add_argument("--repeat", type=int, default=5, help="timed runs (the best one counts)")
    return p


def main(argv: list[str] | None = None) -> None:
    """Print the table."""
    print(run(parser().parse_args(argv)))


if __name__ == "__main__":
    main()
