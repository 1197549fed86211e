"""``serve --workers 2``: a supervisor and two worker processes sharing both ports, under
load, through reloads, a killed worker and SIGTERM. Real processes, real sockets; time
bounds only guard against hangs, nothing asserts a duration."""

from __future__ import annotations

import asyncio
import os
import re
import signal
import socket
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp
import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from licenseproxy.v1 import license_proxy_pb2 as pb
from licenseproxy.v1 import license_proxy_pb2_grpc as pb_grpc
from proxy.cli import main
from proxy.cpus import available_cpus, cgroup_cpu_limit
from proxy.http_bridge import WORKER_HEADER
from proxy.tokens import mint
from tests.conftest import clearkey_request

ROOT = Path(__file__).resolve().parent.parent
KID = uuid.UUID("4060a865-8878-4267-9cbf-91ae5bae1e72").bytes
SERVING = re.compile(r"serving gRPC on \S+:(\d+) and HTTP on \S+:(\d+) with (\d+) workers")
READY = re.compile(r"worker (\d+) \(pid (\d+)\) ready")
ADMIN = re.compile(r"with \d+ workers, the admin API on \S+:(\d+)")
ADMIN_SECRET = "cd" * 32
#: Outer bound on any wait: a hang fails the test instead of blocking the suite.
BOUND = 60.0


def config_text(cors: str = '"*"', http_port: int = 0, server: str = "") -> str:
    text = f"[server]\n{server}\n" + (ROOT / "proxy" / "default.toml").read_text()
    text = text.replace("port = 50051", "port = 0").replace("port = 8081", "port = 0")
    text = text.replace("port = 8080", f"port = {http_port}\nmetrics = true")
    text = text.replace('allow_origins = ["*"]', f"allow_origins = [{cors}]")
    return text + '\n[plugins]\nmodules = ["tests.plugins.slow:Hold"]\n\n[log]\naccess = false\n'


@dataclass
class Supervised:
    """A ``license-proxy serve --workers N`` process and what its log said."""

    process: asyncio.subprocess.Process
    lines: list[str] = field(default_factory=list)
    grpc_port: int = 0
    http_port: int = 0
    _reader: asyncio.Task[None] | None = None
    _changed: asyncio.Event = field(default_factory=asyncio.Event)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.http_port}"

    async def read_log(self) -> None:
        assert self.process.stderr is not None
        while line := await self.process.stderr.readline():
            self.lines.append(line.decode(errors="replace"))
            self._changed.set()
        self._changed.set()

    async def wait_for(self, pattern: re.Pattern[str] | str, start: int = 0) -> re.Match[str]:
        """The first log line from ``start`` on matching ``pattern`` (waits for it)."""
        regex = re.compile(pattern) if isinstance(pattern, str) else pattern
        async with asyncio.timeout(BOUND):
            while True:
                for line in self.lines[start:]:
                    if match := regex.search(line):
                        return match
                if self.process.returncode is not None and self._reader and self._reader.done():
                    raise AssertionError("the supervisor exited:\n" + "".join(self.lines))
                self._changed.clear()
                await self._changed.wait()

    def worker_pids(self) -> dict[int, int]:
        """Worker number -> pid of its latest ready process."""
        pids: dict[int, int] = {}
        for line in self.lines:
            if match := READY.search(line):
                pids[int(match[1])] = int(match[2])
        return pids


async def start_supervisor(config: Path, workers: int = 2) -> Supervised:
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "proxy.cli",
        "serve",
        "--config",
        str(config),
        "--workers",
        str(workers),
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        stderr=asyncio.subprocess.PIPE,
    )
    supervised = Supervised(process)
    supervised._reader = asyncio.create_task(supervised.read_log())
    match = await supervised.wait_for(SERVING)
    supervised.grpc_port, supervised.http_port = int(match[1]), int(match[2])
    assert int(match[3]) == workers
    return supervised


async def stop_supervisor(supervised: Supervised) -> None:
    if supervised.process.returncode is None:
        supervised.process.kill()  # the workers follow through their lifeline
    await supervised.process.wait()
    if supervised._reader is not None:
        await supervised._reader
    for pid in supervised.worker_pids().values():
        await _gone(pid)


async def _gone(pid: int) -> None:
    """Wait until process ``pid`` no longer exists."""
    async with asyncio.timeout(BOUND):
        while True:
            try:
                os.kill(pid, 0)
            except ProcessLookupError:
                return
            await asyncio.sleep(0.02)


@pytest.fixture
async def supervisor(tmp_path):
    config = tmp_path / "proxy.toml"
    config.write_text(config_text())
    running: list[Supervised] = []

    async def start() -> Supervised:
        running.append(await start_supervisor(config))
        return running[-1]

    try:
        yield start, config
    finally:
        for supervised in running:
            await stop_supervisor(supervised)


@dataclass
class Answer:
    """One request of a load run."""

    started: float
    status: int | None  # None: the connection failed
    worker: str | None = None
    allow_origin: str | None = None


async def license_once(url: str, token: str, hold: float = 0) -> Answer:
    """One license request on a fresh connection (the kernel picks the worker per connection)."""
    started = time.monotonic()
    connector = aiohttp.TCPConnector(force_close=True)
    try:
        async with (
            aiohttp.ClientSession(connector=connector) as session,
            session.post(
                f"{url}/v1/licenses/clearkey",
                data=clearkey_request(KID),
                headers={
                    "Authorization": f"Bearer {token}",
                    "Origin": "https://player.example",
                    "x-hold": str(hold),
                },
            ) as response,
        ):
            await response.read()
            return Answer(
                started,
                response.status,
                response.headers.get(WORKER_HEADER),
                response.headers.get("Access-Control-Allow-Origin"),
            )
    except (aiohttp.ClientError, OSError):
        return Answer(started, None)


class Load:
    """``clients`` loops, each sending one request after another until stopped."""

    def __init__(self, url: str, token: str, clients: int = 4) -> None:
        self.url, self.token, self.clients = url, token, clients
        self.answers: list[Answer] = []
        self._stop = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []

    async def _client(self) -> None:
        while not self._stop.is_set():
            self.answers.append(await license_once(self.url, self.token))

    @property
    def stopped(self) -> bool:
        return self._stop.is_set()

    def start(self) -> Load:
        self._tasks = [asyncio.create_task(self._client()) for _ in range(self.clients)]
        return self

    async def until(self, condition, bound: float = BOUND) -> None:
        """Keep the load on until ``condition(answers)`` holds."""
        async with asyncio.timeout(bound):
            while True:
                if condition(self.answers):
                    return
                await asyncio.sleep(0.02)

    async def stop(self) -> list[Answer]:
        self._stop.set()
        await asyncio.gather(*self._tasks)
        return self.answers


async def scrape(url: str) -> tuple[str | None, dict[str, float]]:
    """``/metrics`` from whichever worker answers: its number, and the samples by line key."""
    async with (
        aiohttp.ClientSession(connector=aiohttp.TCPConnector(force_close=True)) as session,
        session.get(f"{url}/metrics") as response,
    ):
        text = await response.text()
        worker = response.headers.get(WORKER_HEADER)
    samples = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            key, _, value = line.rpartition(" ")
            samples[key] = float(value)
    return worker, samples


async def readyz(url: str) -> int | None:
    """``/readyz``'s status on a fresh connection (None when nobody listens)."""
    try:
        async with (
            aiohttp.ClientSession(connector=aiohttp.TCPConnector(force_close=True)) as session,
            session.get(f"{url}/readyz") as response,
        ):
            return response.status
    except (aiohttp.ClientError, OSError):
        return None


async def in_flight_reaches(url: str, count: int) -> None:
    """Scrape until the host's in-flight gauge shows ``count`` (all requests are held)."""
    async with asyncio.timeout(BOUND):
        while True:
            if (await scrape(url))[1]["license_proxy_in_flight"] == count:
                return
            await asyncio.sleep(0.05)


ISSUED = 'license_proxy_requests_total{drm="clearkey",outcome="issued",reason="",transport="http"}'


async def test_two_workers_share_both_ports_and_report_the_whole_host(supervisor, dev_token):
    start, _ = supervisor
    supervised = await start()
    token = dev_token()
    seen: set[str] = set()
    sent = 0
    async with asyncio.timeout(BOUND):
        while seen != {"0", "1"}:
            answer = await license_once(supervised.url, token)
            assert answer.status == 200
            seen.add(answer.worker or "?")
            sent += 1
    # gRPC shares its port the same way
    for _ in range(4):
        async with grpc.aio.insecure_channel(f"127.0.0.1:{supervised.grpc_port}") as channel:
            request = pb.AcquireLicenseRequest(
                drm_system=pb.DRM_SYSTEM_CLEARKEY, challenge=clearkey_request(KID), token=token
            )
            reply = await pb_grpc.LicenseProxyServiceStub(channel).AcquireLicense(request)
            assert reply.license
    # every worker's scrape counts every worker's requests
    scraped_by: set[str] = set()
    async with asyncio.timeout(BOUND):
        while scraped_by != {"0", "1"}:
            worker, samples = await scrape(supervised.url)
            assert samples[ISSUED] == sent
            scraped_by.add(worker or "?")
    # requests held in both workers add up in the in-flight gauge
    held = [asyncio.create_task(license_once(supervised.url, token, hold=4.0)) for _ in range(6)]
    await in_flight_reaches(supervised.url, 6)
    assert [a.status for a in await asyncio.gather(*held)] == [200] * 6
    assert (await scrape(supervised.url))[1]["license_proxy_in_flight"] == 0


async def health_during(supervised: Supervised, load: Load) -> tuple[list, list]:
    """``/readyz`` (status, worker) and gRPC health answers, on fresh connections, until the
    load stops."""
    readiness, health = [], []
    request = health_pb2.HealthCheckRequest(service="licenseproxy.v1.LicenseProxyService")
    while not load.stopped:
        async with (
            aiohttp.ClientSession(connector=aiohttp.TCPConnector(force_close=True)) as session,
            session.get(f"{supervised.url}/readyz") as response,
        ):
            readiness.append((response.status, response.headers.get(WORKER_HEADER)))
        async with grpc.aio.insecure_channel(f"127.0.0.1:{supervised.grpc_port}") as channel:
            reply = await health_pb2_grpc.HealthStub(channel).Check(request, timeout=BOUND)
            health.append(reply.status)
    return readiness, health


async def test_sighup_reloads_every_worker_with_no_failed_request(supervisor, dev_token):
    start, config = supervisor
    supervised = await start()
    load = Load(supervised.url, dev_token()).start()
    await load.until(lambda answers: len(answers) >= 20)
    probes = asyncio.create_task(health_during(supervised, load))
    config.write_text(config_text(cors='"https://player.example"'))
    mark = len(supervised.lines)
    supervised.process.send_signal(signal.SIGHUP)
    await supervised.wait_for("configuration reloaded by 2 of 2 workers", mark)
    reloaded = time.monotonic()

    def both_workers_reloaded(answers: list[Answer]) -> bool:
        after = {a.worker for a in answers if a.started > reloaded}
        return after >= {"0", "1"}

    await load.until(both_workers_reloaded)
    answers = await load.stop()
    readiness, health = await probes
    assert [a for a in answers if a.status != 200] == []
    # both workers stayed ready, over HTTP and gRPC, all through the reload
    assert set(readiness) == {(200, "0"), (200, "1")}
    assert set(health) == {health_pb2.HealthCheckResponse.SERVING}
    assert {a.allow_origin for a in answers if a.started > reloaded} == {"https://player.example"}
    assert {a.allow_origin for a in answers[:20]} == {"*"}


async def test_a_killed_worker_loses_only_what_was_in_flight_on_it(supervisor, dev_token):
    start, _ = supervisor
    supervised = await start()
    load = Load(supervised.url, dev_token()).start()
    await load.until(lambda answers: {a.worker for a in answers} >= {"0", "1"})
    victim = supervised.worker_pids()[1]
    mark = len(supervised.lines)
    killed = time.monotonic()
    os.kill(victim, signal.SIGKILL)
    await _gone(victim)
    dead = time.monotonic()
    await supervised.wait_for(rf"worker 1 \(pid {victim}\) was killed by SIGKILL", mark)
    await supervised.wait_for(READY, mark)
    replacement = supervised.worker_pids()[1]
    assert replacement != victim
    await load.until(lambda answers: any(a.worker == "1" and a.started > dead for a in answers))
    answers = await load.stop()
    failed = [a for a in answers if a.status != 200]
    # Lost: requests in flight at the kill (at most one per client), and those that reached
    # the dying worker's socket before the kernel closed it; none sent once it was gone.
    assert len([a for a in failed if a.started < killed]) <= load.clients
    assert all(a.started < dead for a in failed)
    assert all(a.status == 200 for a in answers if a.started >= dead)
    # what was in flight on the dead worker no longer counts as in flight
    await in_flight_reaches(supervised.url, 0)
    # the supervisor's death takes the workers with it (their lifeline closes)
    supervised.process.kill()
    await supervised.process.wait()
    for pid in supervised.worker_pids().values():
        await _gone(pid)


async def test_sigterm_drains_every_worker(supervisor, dev_token):
    start, config = supervisor
    config.write_text(config_text(server='shutdown_delay = "2s"'))
    supervised = await start()
    token = dev_token()
    held = [asyncio.create_task(license_once(supervised.url, token, hold=4.0)) for _ in range(8)]
    await in_flight_reaches(supervised.url, 8)
    pids = supervised.worker_pids()
    supervised.process.send_signal(signal.SIGTERM)
    # during shutdown_delay the workers still listen, and say they are not ready
    async with asyncio.timeout(BOUND):
        while True:
            if await readyz(supervised.url) == 503:
                break
            await asyncio.sleep(0.02)
    answers = await asyncio.gather(*held)
    assert [a.status for a in answers] == [200] * 8
    assert await asyncio.wait_for(supervised.process.wait(), BOUND) == 0
    for pid in pids.values():
        await _gone(pid)
    assert (await license_once(supervised.url, token)).status is None  # nobody listens


async def test_workers_share_the_admin_listener_and_its_reload_reaches_them_all(
    supervisor, dev_token
):
    start, config = supervisor
    admin = f'\n[admin.token]\nissuer = "ops.example"\nsecret = "hex:{ADMIN_SECRET}"\n'
    config.write_text(config_text() + admin)
    supervised = await start()
    admin_url = f"http://127.0.0.1:{(await supervised.wait_for(ADMIN))[1]}"
    served: list[str | None] = []
    async with asyncio.timeout(BOUND):
        while set(served) != {"0", "1"}:
            answer = await license_once(supervised.url, dev_token())
            assert answer.status == 200
            served.append(answer.worker)
    now = int(time.time())
    claims = {"iss": "ops.example", "aud": "license-proxy-admin", "sub": "ops"}
    token = mint({**claims, "iat": now, "exp": now + 300}, bytes.fromhex(ADMIN_SECRET))

    async def admin_reload() -> dict:
        async with (
            aiohttp.ClientSession() as session,
            session.post(
                f"{admin_url}/admin/v1/reload", headers={"Authorization": f"Bearer {token}"}
            ) as response,
        ):
            assert response.status == 200
            return await response.json()

    # /metrics on the admin listener reports the host, whichever worker answers
    for _ in range(4):
        _, samples = await scrape(admin_url)
        assert samples[ISSUED] == len(served)
    mark = len(supervised.lines)
    assert (await admin_reload())["reloaded"] is True
    await supervised.wait_for("configuration reloaded by 2 of 2 workers", mark)
    config.write_text(config_text() + admin + "\n[bogus]\n")
    mark = len(supervised.lines)
    assert (await admin_reload())["reloaded"] is False
    assert (await license_once(supervised.url, dev_token())).status == 200  # serving on
    assert not any("configuration reloaded by" in line for line in supervised.lines[mark:])


# -- configuration and start ----------------------------------------------------------


def test_state_rules_on_the_memory_store_refuse_several_workers(tmp_path, capsys):
    config = tmp_path / "proxy.toml"
    config.write_text(config_text() + "\n[access.replay]\nmax_uses = 1\n")
    assert main(["serve", "--config", str(config), "--workers", "2"]) == 2
    err = capsys.readouterr().err
    assert "access.state.store" in err and "Redis" in err and "access.replay" in err
    rate = "\n[access.rate_limit.subject]\nrequests = 10\n"
    config.write_text(config_text(server="workers = 2") + rate)
    assert main(["check-config", str(config)]) == 1
    assert "access.state.store" in capsys.readouterr().err
    config.write_text(config_text() + rate)  # one worker: its memory is the whole count
    assert main(["check-config", str(config)]) == 0


def test_a_taken_port_fails_the_supervisor_before_any_worker_starts(tmp_path, capsys):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        config = tmp_path / "proxy.toml"
        config.write_text(config_text(http_port=port))
        assert main(["serve", "--config", str(config), "--workers", "2"]) == 1
    err = capsys.readouterr().err
    assert f"server.http: cannot listen on 127.0.0.1:{port}" in err


def test_workers_option_must_be_a_count_or_auto(capsys):
    for bad in ("0", "-1", "many"):
        with pytest.raises(SystemExit):
            main(["serve", "--workers", bad])
    assert "auto" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("files", "limit"),
    [
        ({"cpu.max": "max 100000\n"}, None),
        ({"cpu.max": "150000 100000\n"}, 1.5),
        ({"cpu/cpu.cfs_quota_us": "300000\n", "cpu/cpu.cfs_period_us": "100000\n"}, 3.0),
        ({"cpu/cpu.cfs_quota_us": "-1\n", "cpu/cpu.cfs_period_us": "100000\n"}, None),
        ({}, None),
    ],
)
def test_cgroup_cpu_quota(tmp_path, files, limit):
    for name, text in files.items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(text)
    assert cgroup_cpu_limit(tmp_path) == limit
    affinity = len(os.sched_getaffinity(0))
    expected = affinity if limit is None else max(1, min(affinity, int(limit)))
    assert available_cpus(tmp_path) == expected


def test_a_quota_below_one_cpu_still_gets_one_worker(tmp_path):
    (tmp_path / "cpu.max").write_text("50000 100000\n")
    assert available_cpus(tmp_path) == 1


def test_every_gauge_says_how_worker_processes_combine():
    # A gauge of one process means nothing summed blindly over workers, and a dead worker's
    # value must leave the host's figure: each gauge names a "live" multiprocess mode.
    from prometheus_client import REGISTRY, Gauge

    import plugins.token.metrics
    import proxy.metrics
    import proxy.upstream.circuit

    gauges = [
        collector
        for collector in list(REGISTRY._collector_to_names)  # prometheus-client lists no other way
        if isinstance(collector, Gauge) and collector._name.startswith("license_proxy_")
    ]
    assert {g._name for g in gauges} >= {"license_proxy_in_flight", "license_proxy_circuit_state"}
    for gauge in gauges:
        assert gauge._multiprocess_mode.startswith("live"), gauge._name
    assert plugins.token.metrics and proxy.metrics and proxy.upstream.circuit


def test_the_metrics_folders_of_dead_supervisors_are_swept(tmp_path):
    from proxy.supervisor import METRICS_PREFIX, sweep_stale_metrics_dirs

    gone = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"],
        capture_output=True,
        text=True,
        check=True,
    )
    dead = tmp_path / f"{METRICS_PREFIX}{gone.stdout.strip()}-abc"
    alive = tmp_path / f"{METRICS_PREFIX}{os.getpid()}-def"
    other = tmp_path / f"{METRICS_PREFIX}xyz"
    for folder in (dead, alive, other):
        folder.mkdir()
        (folder / "counter_1.db").write_bytes(b"x")
    assert sweep_stale_metrics_dirs(tmp_path) == [dead]
    assert not dead.exists() and alive.exists() and other.exists()
