"""One worker against two: what ``serve --workers 2`` buys on this machine, in one run.

``python -m bench.serving [--seconds S] [--connections C] [--rounds R]`` starts
``license-proxy serve --workers N`` on the embedded default (HS256 token, ClearKey
backend, access log off) for N = 1 and N = 2, and drives the HTTP route
``POST /v1/licenses/clearkey`` with ``wrk`` (a C load generator: ``make bench``
installs Debian's ``wrk``), keep-alive connections, after a warm-up. Rounds
alternate 1 and 2 workers so that drift on a shared machine hits both.

It prints req/s, latency, the server's CPU per request (supervisor and workers,
user + system, from /proc), the cores the server kept busy (its CPU seconds per
second: a figure well under 1 or 2 means other processes had the cores) and the
load generator's CPU share: on a 2-core machine wrk shares the cores with the
workers, so two workers can't reach 2x.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import re
import resource
import shutil
import signal
import statistics
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

from bench.harness import ROOT, console_script
from proxy.tokens import development_token

_TICKS = os.sysconf("SC_CLK_TCK")
SERVING = re.compile(r"serving gRPC on \S+:(\d+) and HTTP on \S+:(\d+)")
CHALLENGE = '{"kids":["QGCoZYh4Qmecv5GuW64ecg"],"type":"temporary"}'


def config_file(folder: Path) -> Path:
    """The embedded default with ephemeral ports and no access log."""
    text = (ROOT / "proxy" / "default.toml").read_text()
    text = text.replace("port = 50051", "port = 0").replace("port = 8080", "port = 0")
    text = text.replace("port = 8081", "port = 0")
    path = folder / "serving.toml"
    path.write_text(text + "\n[log]\naccess = false\n")
    return path


def wrk_script(folder: Path, token: str) -> Path:
    """The Lua script that makes every wrk request a ClearKey license request."""
    path = folder / "license.lua"
    path.write_text(
        'wrk.method = "POST"\n'
        f"wrk.body = '{CHALLENGE}'\n"
        f'wrk.headers["Authorization"] = "Bearer {token}"\n'
        'wrk.headers["Content-Type"] = "application/json"\n'
    )
    return path


def tree_cpu(pid: int) -> float:
    """User + system CPU seconds of ``pid`` and its live children (the workers)."""
    total = 0.0
    pids = [pid]
    with contextlib.suppress(OSError):
        children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
        pids += [int(c) for c in children]
    for each in pids:
        with contextlib.suppress(OSError):
            fields = Path(f"/proc/{each}/stat").read_text().rsplit(")", 1)[1].split()
            total += (int(fields[11]) + int(fields[12])) / _TICKS
    return total


@dataclass
class Run:
    """One wrk run against one server."""

    workers: int
    requests: int
    seconds: float
    errors: int
    server_cpu: float
    load_cpu: float
    p50_ms: float
    p99_ms: float

    @property
    def rps(self) -> float:
        """Successful requests per second."""
        return (self.requests - self.errors) / self.seconds

    @property
    def cpu_us(self) -> float:
        """Server CPU microseconds per request (supervisor and workers)."""
        return self.server_cpu / max(1, self.requests) * 1e6


def _latency_ms(text: str, percentile: str) -> float:
    match = re.search(rf"^\s*{percentile}%\s+([\d.]+)(us|ms|s)\s*$", text, re.M)
    if not match:
        return float("nan")
    scale = {"us": 0.001, "ms": 1.0, "s": 1000.0}[match[2]]
    return float(match[1]) * scale


async def wrk(url: str, script: Path, seconds: float, connections: int) -> tuple[str, float]:
    """Run wrk (one thread: it needs far less CPU than the server); its output and CPU seconds."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    process = await asyncio.create_subprocess_exec(
        "wrk",
        "-t1",
        f"-c{connections}",
        f"-d{seconds:g}s",
        "--latency",
        "-s",
        str(script),
        url,
        stdout=asyncio.subprocess.PIPE,
    )
    out, _ = await process.communicate()
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return out.decode(), cpu


async def measure(
    workers: int, config: Path, script: Path, seconds: float, connections: int
) -> Run:
    """Start ``serve --workers N``, warm it up, run wrk, stop it."""
    process = await asyncio.create_subprocess_exec(
        console_script("license-proxy"),
        "serve",
        "--config",
        str(config),
        "--workers",
        str(workers),
        cwd=ROOT,
        stderr=asyncio.subprocess.PIPE,
    )
    assert process.stderr is not None
    wanted = f"with {workers} workers" if workers > 1 else "serving gRPC"
    async with asyncio.timeout(60):
        while True:
            line = (await process.stderr.readline()).decode()
            if not line:
                raise RuntimeError("the proxy exited before serving")
            if wanted in line and (match := SERVING.search(line)):
                break
    drain = asyncio.create_task(_drain(process.stderr))
    url = f"http://127.0.0.1:{match[2]}/v1/licenses/clearkey"
    try:
        await wrk(url, script, 2, connections)  # warm-up
        cpu_before = tree_cpu(process.pid)
        output, load_cpu = await wrk(url, script, seconds, connections)
        server_cpu = tree_cpu(process.pid) - cpu_before
    finally:
        process.send_signal(signal.SIGTERM)
        await asyncio.wait_for(process.wait(), 30)
        drain.cancel()
    total = re.search(r"(\d+) requests in ([\d.]+)(ms|s|m)", output)
    if total is None:
        raise RuntimeError("wrk said:\n" + output)
    requests = int(total[1])
    elapsed = float(total[2]) * {"ms": 0.001, "s": 1.0, "m": 60.0}[total[3]]
    errors = int(m[1]) if (m := re.search(r"Non-2xx or 3xx responses: (\d+)", output)) else 0
    if m := re.search(
        r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", output
    ):
        errors += sum(int(g) for g in m.groups())
    return Run(
        workers,
        requests,
        elapsed,
        errors,
        server_cpu,
        load_cpu,
        _latency_ms(output, "50"),
        _latency_ms(output, "99"),
    )


async def _drain(stream: asyncio.StreamReader) -> None:
    while await stream.readline():
        pass


def report(runs: list[Run]) -> str:
    """The Markdown table and the ratio of two workers to one."""
    lines = [
        "| workers | round | req/s | p50 ms | p99 ms | server CPU us/req | server cores | wrk CPU % | errors |",
        "| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    rounds: dict[int, int] = {}
    for run in runs:
        rounds[run.workers] = rounds.get(run.workers, 0) + 1
        lines.append(
            f"| {run.workers} | {rounds[run.workers]} | {run.rps:,.0f} | {run.p50_ms:.2f} "
            f"| {run.p99_ms:.2f} | {run.cpu_us:.0f} | {run.server_cpu / run.seconds:.2f} "
            f"| {100 * run.load_cpu / run.seconds:.0f} "
            f"| {run.errors} |"
        )
    one = statistics.median(r.rps for r in runs if r.workers == 1)
    two = statistics.median(r.rps for r in runs if r.workers == 2)
    lines.append("")
    lines.append(
        f"Median req/s: 1 worker {one:,.0f}, 2 workers {two:,.0f}: **{two / one:.2f}x** "
        f"(goal 1.5x; {os.cpu_count()} CPUs shared with wrk)."
    )
    return "\n".join(lines)


async def main(argv: list[str]) -> None:
    """Alternate 1 and 2 workers for ``--rounds`` rounds and print the table."""
    parser = argparse.ArgumentParser(prog="python -m bench.serving")
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--connections", type=int, default=64)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args(argv)
    if shutil.which("wrk") is None:
        sys.exit("wrk is not installed: make bench installs it (Debian package wrk)")
    with tempfile.TemporaryDirectory() as scratch:
        folder = Path(scratch)
        config = config_file(folder)
        script = wrk_script(folder, development_token(ttl=86400))
        runs = []
        for _ in range(args.rounds):
            for workers in (1, 2):
                runs.append(await measure(workers, config, script, args.seconds, args.connections))
    print(
        f"`python -m bench.serving --seconds {args.seconds:g} --connections "
        f"{args.connections} --rounds {args.rounds}`, HTTP ClearKey route, wrk -t1 keep-alive\n"
    )
    print(report(runs))


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1:]))
