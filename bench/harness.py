"""Shared pieces of the benchmarks: server subprocesses, load loops, CPU accounting, tables.

Servers run in their own process and the load in this one, so a server's CPU
time per request (read from /proc) is measured apart from the load's; on a
2-core machine that figure is steadier than throughput or latency.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import signal
import statistics
import sys
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp
import grpc

ROOT = Path(__file__).resolve().parent.parent
LISTENING = re.compile(r"serving gRPC on \S+:(\d+) and HTTP on \S+:(\d+)")
_TICKS = os.sysconf("SC_CLK_TCK")


@dataclass
class Server:
    """A server subprocess and its ports."""

    process: asyncio.subprocess.Process
    grpc_port: int
    http_port: int
    _drain: asyncio.Task[None] | None = None

    @property
    def http_url(self) -> str:
        """Base URL of its HTTP listener."""
        return f"http://127.0.0.1:{self.http_port}"

    @property
    def grpc_target(self) -> str:
        """``host:port`` of its gRPC listener."""
        return f"127.0.0.1:{self.grpc_port}"

    def cpu_seconds(self) -> float:
        """User + system CPU seconds the server process has used so far (all threads)."""
        fields = Path(f"/proc/{self.process.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / _TICKS


async def start_server(argv: Sequence[str], env: dict[str, str] | None = None) -> Server:
    """Start ``argv`` and wait for its "serving gRPC on ... and HTTP on ..." line."""
    process = await asyncio.create_subprocess_exec(
        *argv,
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT), **(env or {})},
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    assert process.stdout is not None
    seen = []
    while True:
        line = await asyncio.wait_for(process.stdout.readline(), 60)
        if not line:
            raise RuntimeError("server exited before listening:\n" + b"".join(seen).decode())
        seen.append(line)
        match = LISTENING.search(line.decode(errors="replace"))
        if match:
            break
    server = Server(process, int(match[1]), int(match[2]))

    async def drain() -> None:
        assert process.stdout is not None
        while await process.stdout.readline():
            pass

    server._drain = asyncio.create_task(drain())
    return server


async def stop_server(server: Server) -> None:
    """SIGTERM, then wait (kill after 10 s)."""
    with contextlib.suppress(ProcessLookupError):
        server.process.send_signal(signal.SIGTERM)
    try:
        await asyncio.wait_for(server.process.wait(), 10)
    except TimeoutError:
        server.process.kill()
        await server.process.wait()
    if server._drain is not None:
        server._drain.cancel()


@dataclass
class LoadResult:
    """What one load run saw."""

    label: str
    requests: int
    errors: int
    seconds: float
    server_cpu: float
    latencies: list[float] = field(repr=False, default_factory=list)

    @property
    def rps(self) -> float:
        """Successful requests per second."""
        return self.requests / self.seconds if self.seconds else 0.0

    def percentile(self, q: float) -> float:
        """Latency percentile in milliseconds."""
        if not self.latencies:
            return float("nan")
        ordered = sorted(self.latencies)
        return ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000

    @property
    def cpu_us_per_request(self) -> float:
        """Server CPU microseconds per request served."""
        return self.server_cpu / self.requests * 1e6 if self.requests else float("nan")


Call = Callable[[], Awaitable[bool]]


async def drive(
    call: Call, concurrency: int, seconds: float, rate: float | None = None
) -> tuple[int, int, list[float]]:
    """Run ``call`` from ``concurrency`` workers for ``seconds``; count ok/errors, keep latencies.

    With ``rate``, calls start on a fixed schedule (open loop, ``rate`` per second)
    instead of as fast as the workers can go, so two servers can be compared at the
    same load rather than each at its own saturation.
    """
    start = time.perf_counter()
    deadline = start + seconds
    latencies: list[float] = []
    counts = [0, 0]
    slot = [0]

    async def worker() -> None:
        while time.perf_counter() < deadline:
            if rate:
                due = start + slot[0] / rate
                slot[0] += 1
                delay = due - time.perf_counter()
                if delay > 0:
                    await asyncio.sleep(delay)
                if time.perf_counter() >= deadline:
                    break
            started = time.perf_counter()
            try:
                ok = await call()
            except Exception:
                ok = False
            if ok:
                latencies.append(time.perf_counter() - started)
                counts[0] += 1
            else:
                counts[1] += 1

    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return counts[0], counts[1], latencies


async def measure(
    label: str,
    server: Server,
    call: Call,
    *,
    concurrency: int,
    seconds: float,
    warmup: float,
    rate: float | None = None,
) -> LoadResult:
    """Warm up, then drive ``call`` for ``seconds`` and read the server's CPU around it."""
    await drive(call, concurrency, warmup, rate)
    cpu_before = server.cpu_seconds()
    started = time.perf_counter()
    ok, errors, latencies = await drive(call, concurrency, seconds, rate)
    elapsed = time.perf_counter() - started
    return LoadResult(label, ok, errors, elapsed, server.cpu_seconds() - cpu_before, latencies)


def http_call(
    session: aiohttp.ClientSession, url: str, body: bytes, headers: dict[str, str]
) -> Call:
    """A call that POSTs ``body`` and succeeds on HTTP 200."""

    async def call() -> bool:
        async with session.post(url, data=body, headers=headers) as response:
            await response.read()
            return response.status == 200

    return call


def grpc_call(
    method: Callable[..., Awaitable[object]], request: object, metadata: tuple = ()
) -> Call:
    """A call that invokes a unary gRPC method and succeeds when it returns."""

    async def call() -> bool:
        try:
            await method(request, metadata=metadata or None)
        except grpc.aio.AioRpcError:
            return False
        return True

    return call


def table(results: Sequence[LoadResult]) -> str:
    """A Markdown table of results."""
    lines = [
        "| run | req/s | p50 ms | p99 ms | server CPU us/req | errors |",
        "| --- | ---: | ---: | ---: | ---: | ---: |",
    ]
    for r in results:
        lines.append(
            f"| {r.label} | {r.rps:,.0f} | {r.percentile(0.5):.2f} | {r.percentile(0.99):.2f} "
            f"| {r.cpu_us_per_request:.0f} | {r.errors} |"
        )
    return "\n".join(lines)


def python_command(*args: str) -> list[str]:
    """This interpreter running ``args``."""
    return [sys.executable, *args]


def console_script(name: str) -> str:
    """The path of a console script installed beside this interpreter."""
    return str(Path(sys.executable).with_name(name))


def mean(values: Sequence[float]) -> float:
    """The arithmetic mean (NaN for none)."""
    return statistics.fmean(values) if values else float("nan")
