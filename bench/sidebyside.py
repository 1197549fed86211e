"""Issue 17's side-by-side table in one run: the proxy against a bare forwarder and bare handlers.

    python -m bench.sidebyside [--rounds N] [--seconds S] [--connections C] [--warmup W]
                               [--paths KEY,KEY...] [--before CHECKOUT]

Every path's middle process is its own subprocess on loopback (ephemeral ports),
started by this suite: the Axinom emulator (bench.upstream), a bare aiohttp
forwarder in front of it (bench.forwarder), the bare aiohttp and grpc.aio handlers
(bench.baseline), the proxy on its full vendor path (RS256 token verified with a
public key, IP allow-list, device allow-list, policy election, Axinom backend
minting its message per request, routed to the emulator) and the proxy on its
embedded default (ClearKey, HS256 development token). The load comes from C load
generators (bench.loadgen): ``wrk`` for HTTP, ``h2load`` for gRPC, one thread,
``--connections`` keep-alive connections, one request in flight on each.

Rows (``--paths``; by default all but the last, in this order): ``emulator``,
``forwarder``, ``bare-http``, ``bare-grpc``, ``vendor-http``, ``vendor-grpc``,
``playready-http``, ``playready-grpc``, ``default-http``, ``default-grpc``,
``emulator-playready``. The proxy runs with its defaults but for the access log
(off, as in bench.pipeline and bench.serving): its decision log still writes a
line per license (to a file here).

Per path and round: a warm-up, one real call from a Python client that must
succeed, then the measured run, with the middle process's CPU read from /proc
around it (user + system, all threads). Afterwards the proxy's own counters
(``license_proxy_requests_total`` on its admin listener) must show every measured
request issued: h2load takes a gRPC error for a success (it is HTTP 200). The
other rows count by status (a refusal by the emulator is a 4xx; the bare grpc.aio
handler has one answer, checked by the real call). Rounds interleave the paths so
that drift on a shared machine hits them all.

It prints, as Markdown: per path the median req/s, p50, p99 and CPU microseconds
per request of the middle process (for the emulator row, the emulator's); the
issue's goals computed from the same run; each round's figures with the CPU the
load generator and the rest of the machine used meanwhile; and any failure.
The proxy's CPU per request includes its upstream client's work, as the
forwarder's does.

``--before CHECKOUT`` runs the proxy paths a second time from another checkout
(PYTHONPATH=CHECKOUT, its generated ``licenseproxy`` in place; this venv's
dependencies), in the same rounds, so before and after stand side by side.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import re
import resource
import shutil
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import aiohttp
import grpc
from prometheus_client.parser import text_string_to_metric_families

from bench import loadgen
from bench.sidebyside_fleet import Fleet, Target
from bench.sidebyside_paths import (
    BY_KEY,
    DEFAULT_PATHS,
    GRPC_HEADERS,
    GRPC_METHOD,
    Material,
    PathSpec,
    grpc_request,
    http_headers,
    http_path,
)
from bench.sidebyside_report import Sample, details, failures, goals, summary
from licenseproxy.v1 import license_proxy_pb2_grpc as pb_grpc

_TICKS = os.sysconf("SC_CLK_TCK")
Counts = dict[tuple[str, str, str, str], float]


def machine_busy() -> float:
    """CPU seconds the whole machine has spent busy (all cores), from /proc/stat."""
    fields = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = fields[3] + fields[4]
    return (sum(fields[:8]) - idle) / _TICKS


def own_cpu() -> float:
    """CPU seconds this process (the suite's own Python) has used."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def cpu_model() -> str:
    """The processor's model name, as /proc/cpuinfo gives it."""
    match = re.search(r"^model name\s*:\s*(.+)$", Path("/proc/cpuinfo").read_text(), re.M)
    return match[1].strip() if match else platform.machine()


def parse_counts(text: str) -> Counts:
    """``license_proxy_requests_total`` from Prometheus text, by (transport, drm, outcome, reason)."""
    found: Counts = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == "license_proxy_requests_total":
                labels = sample.labels
                t, d, o, r = (labels.get(n, "") for n in ("transport", "drm", "outcome", "reason"))
                found[(t, d, o, r)] = sample.value
    return found


def verify(
    spec: PathSpec,
    load: loadgen.Load,
    before: Counts | None,
    after: Counts | None,
    connections: int,
) -> tuple[int | None, int, list[str]]:
    """Whether the proxy issued a license for every request the load generator saw answered:
    the licenses it counted, the requests it did not license, the failures in words."""
    if before is None or after is None:
        return None, 0, ["the proxy's request counters could not be read: answers unverified"]
    delta: dict[tuple[str, str], float] = {}
    for key, value in after.items():
        transport, drm, outcome, reason = key
        if transport == spec.transport and drm == spec.drm and value != before.get(key, 0.0):
            delta[(outcome, reason)] = value - before.get(key, 0.0)
    issued = int(sum(v for (outcome, _), v in delta.items() if outcome == "issued"))
    counted = 0
    problems = []
    for (outcome, reason), count in sorted(delta.items()):
        # The requests in flight when the load generator stops are cut, and may count
        # as cancelled: at most one per connection.
        if outcome == "issued" or (outcome == "cancelled" and count <= connections):
            continue
        counted += int(count)
        problems.append(f"{int(count)} {outcome}" + (f" ({reason})" if reason else ""))
    if issued < load.ok:
        problems.append(f"the proxy counted {issued} licenses issued for {load.ok} 2xx answers")
    return issued, max(counted, load.ok - issued), problems


@dataclass
class Row:
    """A path ready to measure: its load, its real-client probe, its processes."""

    key: str
    label: str
    spec: PathSpec
    target: Target
    upstream: Target | None
    load: Callable[[int], Awaitable[loadgen.Load]]
    probe: Callable[[], Awaitable[None]]


class Bench:
    """One run: its processes, its clients, its files."""

    def __init__(self, args: argparse.Namespace, folder: Path, session: aiohttp.ClientSession):
        self.args = args
        self.folder = folder
        self.session = session
        self.material = Material.make()
        self.fleet = Fleet(folder, self.material, args.before)
        self.channels: dict[str, grpc.aio.Channel] = {}

    async def close(self) -> None:
        """Close the probe channels and stop every process."""
        for channel in self.channels.values():
            await channel.close()
        await self.fleet.stop()

    async def rows(self, spec: PathSpec) -> list[Row]:
        """``spec``'s row, and with ``--before`` the other checkout's for a proxy row."""
        variants = [("", spec.server, spec.label)]
        if spec.proxy and self.args.before:
            variants.append(("before-", f"before-{spec.server}", f"before: {spec.label}"))
        rows = []
        for prefix, server, label in variants:
            target = await self.fleet.target(server)
            upstream = None
            if spec.server in ("forwarder", "vendor"):
                upstream = await self.fleet.target("emulator")
            make = self._http_row if spec.transport == "http" else self._grpc_row
            rows.append(make(prefix + spec.key, label, spec, target, upstream))
        return rows

    def _http_row(
        self, key: str, label: str, spec: PathSpec, target: Target, upstream: Target | None
    ) -> Row:
        url = target.http_base + http_path(spec)
        body = self.material.challenges[spec.drm]
        headers = http_headers(spec, self.material)
        body_file = self.folder / f"{key}.body"
        body_file.write_bytes(body)
        script = loadgen.wrk_script(self.folder / f"{key}.lua", body_file, headers)

        async def load(seconds: int) -> loadgen.Load:
            return await loadgen.wrk(url, script, seconds, self.args.connections)

        async def probe() -> None:
            async with self.session.post(url, data=body, headers=headers) as response:
                answer = await response.read()
            if response.status != 200 or not answer:
                raise RuntimeError(
                    f"{label}: a real call answered {response.status}: {answer[:300]!r}"
                )

        return Row(key, label, spec, target, upstream, load, probe)

    def _grpc_row(
        self, key: str, label: str, spec: PathSpec, target: Target, upstream: Target | None
    ) -> Row:
        assert target.grpc_target is not None
        request = grpc_request(spec, self.material)
        data = self.folder / f"{key}.grpc"
        data.write_bytes(loadgen.grpc_frame(request.SerializeToString()))
        url = f"http://{target.grpc_target}{GRPC_METHOD}"
        if target.grpc_target not in self.channels:
            self.channels[target.grpc_target] = grpc.aio.insecure_channel(target.grpc_target)
        stub = pb_grpc.LicenseProxyServiceStub(self.channels[target.grpc_target])
        log = self.folder / f"{key}.h2load.log"

        async def load(seconds: int) -> loadgen.Load:
            return await loadgen.h2load(
                url, data, GRPC_HEADERS, seconds, self.args.connections, log
            )

        async def probe() -> None:
            try:
                answer = await stub.AcquireLicense(request, timeout=10)
            except grpc.aio.AioRpcError as error:
                raise RuntimeError(
                    f"{label}: a real call failed: {error.code().name} {error.details()}"
                ) from None
            if not answer.license:
                raise RuntimeError(f"{label}: a real call answered no license")

        return Row(key, label, spec, target, upstream, load, probe)

    async def counts(self, url: str | None) -> Counts | None:
        """The proxy's request counters, None when it serves none (an old checkout)."""
        if url is None:
            return None
        try:
            async with self.session.get(url) as response:
                if response.status != 200:
                    return None
                return parse_counts(await response.text())
        except aiohttp.ClientError:
            return None

    async def measure(self, row: Row, round_: int) -> Sample:
        """Warm up, probe, then the measured run with CPU read around it and counters checked."""
        await row.load(self.args.warmup)
        await row.probe()
        metrics = row.target.metrics_url
        before = await self.counts(metrics)
        middle = row.target.server
        upstream = row.upstream.server if row.upstream else None
        cpu0, up0 = middle.cpu_seconds(), upstream.cpu_seconds() if upstream else 0.0
        busy0, own0, wall0 = machine_busy(), own_cpu(), time.monotonic()
        load = await row.load(self.args.seconds)
        wall = time.monotonic() - wall0
        cpu = middle.cpu_seconds() - cpu0
        up = upstream.cpu_seconds() - up0 if upstream else None
        others = (machine_busy() - busy0) - (own_cpu() - own0) - cpu - (up or 0.0) - load.cpu
        sample = Sample(row.key, row.label, row.spec, round_, load, wall, cpu, up, max(0.0, others))
        if load.failed:
            sample.failures.append(f"{load.failed} failed per the load generator")
        if metrics:
            after = await self.counts(metrics)
            sample.issued, sample.refused, problems = verify(
                row.spec, load, before, after, self.args.connections
            )
            sample.failures += problems
        return sample


async def run(args: argparse.Namespace) -> str:
    """Start what the chosen paths need, measure them round after round, report."""
    keys = [k.strip() for k in args.paths.split(",") if k.strip()]
    unknown = [k for k in keys if k not in BY_KEY]
    if unknown:
        raise SystemExit(f"unknown path(s) {unknown}; choose from {', '.join(BY_KEY)}")
    specs = [BY_KEY[k] for k in keys]
    for tool, needed in (("wrk", "http"), ("h2load", "grpc")):
        if any(s.transport == needed for s in specs) and shutil.which(tool) is None:
            raise SystemExit(
                f"{tool} is not installed: make bench installs it (Debian wrk, nghttp2-client)"
            )
    started, load_before = datetime.now(UTC), os.getloadavg()
    samples: list[Sample] = []
    with tempfile.TemporaryDirectory(prefix="bench-sidebyside-") as scratch:
        async with aiohttp.ClientSession() as session:
            bench = Bench(args, Path(scratch), session)
            try:
                rows = [row for spec in specs for row in await bench.rows(spec)]
                for r in range(args.rounds):
                    for row in rows:
                        sample = await bench.measure(row, r)
                        samples.append(sample)
                        trouble = (
                            f", FAILURES: {'; '.join(sample.failures)}" if sample.failures else ""
                        )
                        print(
                            f"round {r + 1} {row.key}: {sample.load.rps:,.0f} req/s, "
                            f"{sample.cpu_us:.0f} us CPU/req{trouble}",
                            file=sys.stderr,
                            flush=True,
                        )
            finally:
                await bench.close()
    load_after = os.getloadavg()
    command = " ".join(["python -m bench.sidebyside", *args.argv])
    return "\n".join(
        [
            f"`{command}`, {started:%Y-%m-%d %H:%M} UTC, {os.cpu_count()} CPUs "
            f"({cpu_model()}), Python {platform.python_version()}; {args.connections} "
            f"connections, {args.seconds:g} s per path per round after {args.warmup:g} s of "
            f"warm-up, {args.rounds} round(s); load average {load_before[0]:.2f} at the start, "
            f"{load_after[0]:.2f} at the end"
            + (f"; before = `{args.before}`" if args.before else ""),
            "",
            summary(samples),
            "",
            goals(samples, args.rounds, bool(args.before)),
            "",
            "Each round (cores: CPU seconds per second of the run, of the load generator and of "
            "every other process on the machine):",
            "",
            details(samples),
            "",
            failures(samples),
        ]
    )


def _whole(text: str) -> int:
    """Whole seconds, at least 1 (wrk and h2load take no fraction)."""
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError("at least 1 second")
    return value


def parser() -> argparse.ArgumentParser:
    """Command-line options."""
    p = argparse.ArgumentParser(
        prog="python -m bench.sidebyside", description=__doc__.splitlines()[0]
    )
    p.add_argument("--rounds", type=int, default=1, help="rounds over every path (default 1)")
    p.add_argument("--seconds", type=_whole, default=8, help="measured seconds per path per round")
    p.add_argument("--warmup", type=_whole, default=2, help="warm-up seconds before each run")
    p.add_argument("--connections", type=int, default=16, help="keep-alive connections")
    p.add_argument(
        "--paths",
        default=",".join(DEFAULT_PATHS),
        help=f"comma-separated rows (default all but emulator-playready): {', '.join(BY_KEY)}",
    )
    p.add_argument(
        "--before",
        metavar="CHECKOUT",
        help="also run the proxy rows from another checkout (with its generated licenseproxy), "
        "in the same rounds",
    )
    return p


def main(argv: list[str] | None = None) -> None:
    """Run and print the report."""
    argv = sys.argv[1:] if argv is None else argv
    args = parser().parse_args(argv)
    args.argv = argv
    print(asyncio.run(run(args)), flush=True)


if __name__ == "__main__":
    main()
