"""C load generators for the benchmarks: ``wrk`` (HTTP/1.1) and ``h2load`` (gRPC over h2c).

Both come from Debian (``make bench`` installs ``wrk`` and ``nghttp2-client``) and
cost far less CPU per request than a Python client, so on a 2-core machine the
server under test keeps most of a core. Each run is one thread and ``connections``
keep-alive connections with one request in flight on each.

h2load counts a request as succeeded on HTTP 200, which a gRPC error also is (its
status is in the trailers): whoever uses :func:`h2load` on a gRPC server checks the
answers another way (a real call before the run, the server's own counters after).
"""

from __future__ import annotations

import asyncio
import re
import resource
import statistics
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

_UNITS = {"us": 1e-3, "ms": 1.0, "s": 1000.0, "m": 60_000.0}


@dataclass
class Load:
    """What one load-generator run saw.

    :ivar ok: requests answered with a 2xx status
    :ivar failed: everything else: other statuses, socket errors, timeouts, stream errors
    :ivar seconds: the measured duration
    :ivar p50_ms: median latency (ms)
    :ivar p99_ms: 99th percentile latency (ms)
    :ivar cpu: CPU seconds (user + system) the load generator itself used
    """

    ok: int
    failed: int
    seconds: float
    p50_ms: float
    p99_ms: float
    cpu: float

    @property
    def rps(self) -> float:
        """Successful requests per second."""
        return self.ok / self.seconds if self.seconds else 0.0


async def _run(argv: list[str]) -> tuple[str, float]:
    """Run a load generator to its end; its standard output and CPU seconds."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    process = await asyncio.create_subprocess_exec(
        *argv, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT
    )
    out, _ = await process.communicate()
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    text = out.decode(errors="replace")
    if process.returncode != 0:
        raise RuntimeError(f"{argv[0]} exited with {process.returncode}:\n{text}")
    return text, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def wrk_script(
    path: Path, body_file: Path, headers: Mapping[str, str], method: str = "POST"
) -> Path:
    """Write the Lua script that makes every wrk request ``method`` with the body in
    ``body_file`` (read once, as bytes: a binary challenge needs no quoting) and ``headers``."""
    lines = [
        f"wrk.method = {_lua(method)}",
        f"local f = assert(io.open({_lua(str(body_file))}, 'rb'))",
        "wrk.body = f:read('*a')",
        "f:close()",
    ]
    lines += [f"wrk.headers[{_lua(k)}] = {_lua(v)}" for k, v in headers.items()]
    path.write_text("\n".join(lines) + "\n")
    return path


def _lua(text: str) -> str:
    if any(c in text for c in "\\'\n\r"):
        raise ValueError(f"not written into a Lua string: {text!r}")
    return f"'{text}'"


def parse_wrk(text: str, cpu: float = 0.0) -> Load:
    """A :class:`Load` from ``wrk --latency`` output."""
    total = re.search(r"(\d+) requests in ([\d.]+)(us|ms|s|m)\b", text)
    if total is None:
        raise RuntimeError("wrk said:\n" + text)
    requests = int(total[1])
    seconds = float(total[2]) * _UNITS[total[3]] / 1000
    failed = int(m[1]) if (m := re.search(r"Non-2xx or 3xx responses: (\d+)", text)) else 0
    ok = requests - failed
    if m := re.search(
        r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", text
    ):
        failed += sum(int(g) for g in m.groups())
    return Load(ok, failed, seconds, _wrk_percentile(text, "50"), _wrk_percentile(text, "99"), cpu)


def _wrk_percentile(text: str, percentile: str) -> float:
    match = re.search(rf"^\s*{percentile}(?:\.0+)?%\s+([\d.]+)(us|ms|s|m)\s*$", text, re.M)
    return float(match[1]) * _UNITS[match[2]] if match else float("nan")


async def wrk(url: str, script: Path, seconds: int, connections: int) -> Load:
    """Run ``wrk`` (one thread, ``connections`` connections) for ``seconds`` (whole: both
    tools take no fraction) against ``url``."""
    text, cpu = await _run(
        [
            "wrk",
            "-t1",
            f"-c{connections}",
            f"-d{seconds}s",
            "--timeout",
            "10s",
            "--latency",
            "-s",
            str(script),
            url,
        ]
    )
    return parse_wrk(text, cpu)


def grpc_frame(message: bytes) -> bytes:
    """``message`` as one gRPC length-prefixed message: not compressed, 4-byte big-endian length."""
    return b"\x00" + len(message).to_bytes(4, "big") + message


def grpc_unframe(data: bytes) -> bytes:
    """The one message of a gRPC length-prefixed frame (the inverse of :func:`grpc_frame`)."""
    if len(data) < 5 or data[0] != 0:
        raise ValueError("not an uncompressed gRPC message")
    length = int.from_bytes(data[1:5], "big")
    if len(data) != 5 + length:
        raise ValueError("the frame's length does not match its data")
    return data[5:]


def parse_h2load(text: str, log: str, cpu: float = 0.0) -> Load:
    """A :class:`Load` from h2load's summary and its ``--log-file`` (one request a line:
    start in us since the epoch, HTTP status, duration in us)."""
    counts = re.search(
        r"requests: (\d+) total, (\d+) started, (\d+) done, (\d+) succeeded, (\d+) failed, "
        r"(\d+) errored, (\d+) timeout",
        text,
    )
    finished = re.search(r"finished in ([\d.]+)(us|ms|s|m)\b", text)
    if counts is None or finished is None:
        raise RuntimeError("h2load said:\n" + text)
    ok = int(counts[4])
    failed = int(counts[5]) + int(counts[6]) + int(counts[7])
    durations = []
    for line in log.splitlines():
        fields = line.split("\t")
        if len(fields) >= 3 and fields[1].startswith("2"):
            durations.append(int(fields[2]) / 1000)
    p50 = p99 = float("nan")
    if len(durations) >= 2:
        cuts = statistics.quantiles(durations, n=100, method="inclusive")
        p50, p99 = cuts[49], cuts[98]
    seconds = float(finished[1]) * _UNITS[finished[2]] / 1000
    return Load(ok, failed, seconds, p50, p99, cpu)


async def h2load(
    url: str,
    data: Path,
    headers: Mapping[str, str],
    seconds: int,
    connections: int,
    log: Path,
) -> Load:
    """POST ``data`` to ``url`` over h2c with ``h2load`` (one thread, ``connections``
    connections, one stream in flight on each) for ``seconds``."""
    argv = [
        "h2load",
        "-t1",
        f"-c{connections}",
        "-m1",
        f"-D{seconds}",
        "-d",
        str(data),
        "--log-file",
        str(log),
    ]
    for name, value in headers.items():
        argv += ["-H", f"{name}: {value}"]
    text, cpu = await _run([*argv, url])
    return parse_h2load(text, _take(log), cpu)


def _take(path: Path) -> str:
    """The text of a file read once and removed (runs end to end: nothing else waits)."""
    text = path.read_text()
    path.unlink()
    return text
