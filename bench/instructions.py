"""Per-request costs that the machine's noise does not move: instructions, syscalls, switches.

``python -m bench.instructions`` starts each middle process of bench.sidebyside's rows
(bare handlers, the proxy's embedded default, the proxy's full vendor path with the
Axinom emulator behind it) and drives it with ``h2load`` (16 connections, one request
in flight on each; ``--h1`` for HTTP), then reports per request:

- ``--mode instructions`` (default): user-space instructions of the middle process,
  all threads, counted by valgrind's callgrind (``--separate-threads=yes``: the main
  thread apart from the others). The counters are zeroed after a warm-up
  (``callgrind_control -z``) and dumped after exactly ``-n`` requests
  (``callgrind_control -d``). Deterministic to about 1 %: a loaded machine slows the
  run, it does not change the count. Kernel time, cache misses and the cost of a
  context switch are not in it.
- ``--mode syscalls``: the process runs natively; ``strace -c -f`` counts its system
  calls over the ``-n`` requests, by name, and /proc gives each thread's voluntary and
  involuntary context switches and its user and system CPU (the CPU figures are the
  noisy ones).

``--env NAME=VALUE`` sets a variable in every middle process (``GRPC_EXPERIMENTS`` for
example), so a before/after of a gRPC knob is two runs of this module. This process
imports ``proxy``, which sets the proxy's ``GRPC_EXPERIMENTS`` default
(:mod:`proxy.grpc_env`), and its children inherit it: ``--env GRPC_EXPERIMENTS=`` runs
them on grpc's own defaults.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import re
import shutil
import sys
import tempfile
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import grpc

from bench.harness import Server, console_script, stop_server
from bench.loadgen import grpc_frame
from bench.sidebyside_fleet import SERVING, Fleet, default_config, launch, vendor_config
from bench.sidebyside_paths import (
    BY_KEY,
    GRPC_METHOD,
    Material,
    PathSpec,
    grpc_request,
    http_headers,
    http_path,
)
from licenseproxy.v1 import license_proxy_pb2 as pb
from licenseproxy.v1 import license_proxy_pb2_grpc as pb_grpc

PATHS = (
    "forwarder",
    "bare-grpc",
    "bare-http",
    "default-grpc",
    "default-http",
    "vendor-grpc",
    "vendor-http",
)
_TICKS = os.sysconf("SC_CLK_TCK")
# Python threads keep the process's name: grpc.aio's completion-queue poller, the audit
# writer; grpc core names its own (event_engine, grpc_global_timer).
_THREAD_NAMES = {"python": "python threads", "license-proxy": "python threads"}


@dataclass
class Figures:
    """Per-request figures of one path."""

    key: str
    requests: int
    instructions: dict[str, float] = field(default_factory=dict)
    syscalls: Counter[str] = field(default_factory=Counter)
    threads: dict[str, tuple[float, float, float, float]] = field(default_factory=dict)


def _valgrind(out: Path) -> list[str]:
    return [
        "valgrind",
        "--tool=callgrind",
        "--separate-threads=yes",
        "--dump-instr=no",
        f"--callgrind-out-file={out}.%p",
    ]


async def _exec(*argv: str) -> str:
    process = await asyncio.create_subprocess_exec(
        *argv, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT
    )
    out, _ = await process.communicate()
    return out.decode(errors="replace")


class Rig:
    """The middle processes, each started on first use (under callgrind when asked)."""

    def __init__(self, folder: Path, material: Material, mode: str, env: dict[str, str]):
        self.folder = folder
        self.material = material
        self.mode = mode
        self.env = env
        self.fleet = Fleet(folder, material, None)  # the emulator, never under valgrind
        self.servers: dict[str, Server] = {}
        self.urls: dict[str, str] = {}

    async def server(self, spec: PathSpec) -> Server:
        """The middle process of ``spec``'s row."""
        name = spec.server
        if name not in self.servers:
            prefix = _valgrind(self.folder / name) if self.mode == "instructions" else []
            if name == "forwarder":
                emulator = await self.fleet.target("emulator")
                env = {
                    **self.env,
                    "BENCH_UPSTREAM": emulator.http_base,
                    "BENCH_AXDRM_MESSAGE": self.material.axinom_message,
                }
                argv = [*prefix, sys.executable, "-m", "bench.forwarder"]
                server, match = await launch(name, argv, r"forwarding on (\S+)", self.folder, env)
                self.servers[name], self.urls[name] = server, match[1]
                return server
            if name == "baseline":
                argv = [sys.executable, "-m", "bench.baseline"]
            else:
                if name == "vendor":
                    emulator = await self.fleet.target("emulator")
                    (self.folder / "bench-rs256.pem").write_bytes(self.material.public_pem())
                    config = vendor_config(self.folder, name, emulator.http_base)
                else:
                    config = default_config(self.folder, name)
                argv = [console_script("license-proxy"), "serve", "--config", str(config)]
            self.servers[name], _ = await launch(
                name, [*prefix, *argv], SERVING, self.folder, self.env
            )
        return self.servers[name]

    async def stop(self) -> None:
        """Stop every process started."""
        for server in self.servers.values():
            await stop_server(server)
        await self.fleet.stop()


def _load_argv(
    spec: PathSpec,
    server: Server,
    material: Material,
    folder: Path,
    n: int,
    base_url: str | None = None,
) -> list[str]:
    argv = ["h2load", "-t1", "-c16", "-m1", f"-n{n}"]
    if spec.transport == "grpc":
        data = folder / f"{spec.key}.grpc"
        data.write_bytes(grpc_frame(grpc_request(spec, material).SerializeToString()))
        headers = {"content-type": "application/grpc", "te": "trailers"}
        url = f"http://{server.grpc_target}{GRPC_METHOD}"
    else:
        data = folder / f"{spec.key}.body"
        data.write_bytes(material.challenges[spec.drm])
        headers = http_headers(spec, material)
        base = base_url or server.http_url
        url = base + (http_path(spec) if spec.server != "baseline" else "/v1/licenses/clearkey")
        argv.append("--h1")
    for name, value in headers.items():
        argv += ["-H", f"{name}: {value}"]
    return [*argv, "-d", str(data), url]


async def _load(argv: list[str], n: int) -> None:
    text = await _exec(*argv)
    done = re.search(r"(\d+) succeeded", text)
    if done is None or int(done[1]) != n:
        raise RuntimeError("h2load did not complete every request:\n" + text)


async def _probe(spec: PathSpec, server: Server, material: Material) -> None:
    """One real call that must succeed (h2load counts a gRPC error as a success)."""
    if spec.transport != "grpc":
        return
    async with grpc.aio.insecure_channel(server.grpc_target) as channel:
        stub = pb_grpc.LicenseProxyServiceStub(channel)
        answer = await stub.AcquireLicense(grpc_request(spec, material), timeout=60)
        if not isinstance(answer, pb.AcquireLicenseResponse) or not answer.license:
            raise RuntimeError(f"{spec.key}: no license in the answer")


def _threads(pid: int) -> dict[str, tuple[int, int, int, int, str]]:
    found = {}
    for tid in os.listdir(f"/proc/{pid}/task"):
        with contextlib.suppress(FileNotFoundError):
            stat = Path(f"/proc/{pid}/task/{tid}/stat").read_text()
            status = Path(f"/proc/{pid}/task/{tid}/status").read_text()
            fields = stat.rsplit(")", 1)[1].split()
            switches = dict(re.findall(r"^(\w*ctxt_switches):\s+(\d+)", status, re.M))
            comm = stat[stat.index("(") + 1 : stat.rindex(")")]
            found[tid] = (
                int(fields[11]),
                int(fields[12]),
                int(switches["voluntary_ctxt_switches"]),
                int(switches["nonvoluntary_ctxt_switches"]),
                "main" if tid == str(pid) else _THREAD_NAMES.get(comm, comm),
            )
    return found


def _thread_figures(
    before: dict, after: dict, n: int
) -> dict[str, tuple[float, float, float, float]]:
    """User us, system us, voluntary and involuntary switches per request, by thread name."""
    sums: dict[str, list[float]] = {}
    for tid, (user, system, vol, invol, name) in after.items():
        u0, s0, v0, i0, _ = before.get(tid, (0, 0, 0, 0, name))
        row = sums.setdefault(name, [0.0, 0.0, 0.0, 0.0])
        row[0] += (user - u0) * 1e6 / _TICKS / n
        row[1] += (system - s0) * 1e6 / _TICKS / n
        row[2] += (vol - v0) / n
        row[3] += (invol - i0) / n
    return {name: (r[0], r[1], r[2], r[3]) for name, r in sums.items() if any(r)}


async def _dump(pid: int, out: Path) -> dict[str, float]:
    """Dump callgrind's counters of ``pid`` and read its instructions per thread."""
    existing = set(out.parent.glob(f"{out.name}.{pid}*"))
    await _exec("callgrind_control", "-d", str(pid))
    for _ in range(600):
        fresh = set(out.parent.glob(f"{out.name}.{pid}*")) - existing
        if fresh:
            break
        await asyncio.sleep(0.1)
    await asyncio.sleep(2)  # one file per thread; let them all land
    fresh = set(out.parent.glob(f"{out.name}.{pid}*")) - existing
    counts: dict[str, float] = {}
    for path in sorted(fresh):
        text = path.read_text(errors="replace")
        total = re.search(r"^(?:summary|totals):\s+(\d+)", text, re.M)
        thread = re.search(r"^thread:\s+(\d+)", text, re.M)
        if total:
            name = "main" if thread is None or thread[1] == "1" else f"thread {thread[1]}"
            counts[name] = counts.get(name, 0) + int(total[1])
    return counts


async def measure(rig: Rig, spec: PathSpec, n: int, warmup: int) -> Figures:
    """The per-request figures of ``spec``'s row over ``n`` requests after ``warmup``."""
    server = await rig.server(spec)
    pid = server.process.pid
    base = rig.urls.get(spec.server)
    argv = _load_argv(spec, server, rig.material, rig.folder, n, base)
    await _probe(spec, server, rig.material)
    await _load(_load_argv(spec, server, rig.material, rig.folder, warmup, base), warmup)
    figures = Figures(spec.key, n)
    if rig.mode == "instructions":
        await _exec("callgrind_control", "-z", str(pid))
        await _load(argv, n)
        counts = await _dump(pid, rig.folder / spec.server)
        figures.instructions = {name: count / n for name, count in counts.items()}
        return figures
    before = _threads(pid)
    await _load(argv, n)
    figures.threads = _thread_figures(before, _threads(pid), n)
    trace = rig.folder / f"{spec.key}.strace"
    strace = await asyncio.create_subprocess_exec(
        "strace",
        "-c",
        "-f",
        "-p",
        str(pid),
        "-o",
        str(trace),
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.DEVNULL,
    )
    await asyncio.sleep(1)  # strace attaches to every thread
    await _load(argv, n)
    strace.send_signal(2)
    await strace.wait()
    for line in trace.read_text().splitlines():
        cols = line.split()
        if len(cols) >= 5 and re.fullmatch(r"[\d.]+", cols[0]) and cols[-1] != "total":
            figures.syscalls[cols[-1]] = int(cols[3])
    return figures


def report(all_figures: list[Figures], mode: str) -> str:
    """A Markdown table of the figures."""
    if mode == "instructions":
        lines = [
            "| path | instructions/req, all threads | main thread | other threads |",
            "| --- | ---: | ---: | ---: |",
        ]
        for f in all_figures:
            total = sum(f.instructions.values())
            main = f.instructions.get("main", 0.0)
            lines.append(f"| {f.key} | {total:,.0f} | {main:,.0f} | {total - main:,.0f} |")
        return "\n".join(lines)
    names = sorted({name for f in all_figures for name in f.syscalls}, key=lambda s: s)
    lines = [
        "| path | syscalls/req | by name (per request) | threads: user us, sys us, voluntary, involuntary switches per request |",
        "| --- | ---: | --- | --- |",
    ]
    for f in all_figures:
        total = sum(f.syscalls.values()) / f.requests
        by_name = ", ".join(
            f"{name} {f.syscalls[name] / f.requests:.2f}"
            for name in sorted(names, key=lambda s: -f.syscalls[s])
            if f.syscalls[name] / f.requests >= 0.05
        )
        threads = "; ".join(
            f"{name} {u:.0f}/{s:.0f}/{v:.2f}/{i:.2f}" for name, (u, s, v, i) in f.threads.items()
        )
        lines.append(f"| {f.key} | {total:.1f} | {by_name} | {threads} |")
    return "\n".join(lines)


async def run(args: argparse.Namespace) -> str:
    """Measure every path asked for; the report."""
    env = dict(item.split("=", 1) for item in args.env)
    folder = Path(tempfile.mkdtemp(prefix="bench-instructions-"))
    rig = Rig(folder, Material.make(), args.mode, env)
    results = []
    try:
        for key in args.paths.split(","):
            results.append(await measure(rig, BY_KEY[key], args.requests, args.warmup))
            print(report(results[-1:], args.mode).splitlines()[-1], file=sys.stderr, flush=True)
    finally:
        await rig.stop()
        if not args.keep:
            shutil.rmtree(folder, ignore_errors=True)
    return report(results, args.mode)


def parser() -> argparse.ArgumentParser:
    """The command line."""
    p = argparse.ArgumentParser(prog="python -m bench.instructions", description=__doc__)
    p.add_argument(
        "--paths", default=",".join(PATHS), help="comma-separated rows (bench.sidebyside keys)"
    )
    p.add_argument("--mode", choices=("instructions", "syscalls"), default="instructions")
    p.add_argument("-n", "--requests", type=int, default=2000, help="requests measured per path")
    p.add_argument("--warmup", type=int, default=500, help="requests before the counters start")
    p.add_argument(
        "--env",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="environment of the middle processes (repeatable)",
    )
    p.add_argument("--keep", action="store_true", help="keep the work folder (dumps, logs)")
    return p


def main(argv: list[str] | None = None) -> None:
    """Run and print the table."""
    print(asyncio.run(run(parser().parse_args(argv))))


if __name__ == "__main__":
    main()
