"""Workers on every core: the supervisor that starts, replaces, reloads and stops them.

``license-proxy serve`` with ``server.workers`` (or ``--workers``) above one runs
a :class:`Supervisor` instead of serving itself:

- it binds both ports first (without listening, ``SO_REUSEPORT``), which fails
  the start when a port is taken, turns port 0 into a real port every worker
  shares, and keeps the ports reserved while a worker is being replaced;
- it starts the workers (:mod:`proxy.worker`), each serving both listeners on
  those ports, and announces ``serving ... with N workers`` once all are ready;
- a worker that dies is replaced after a back-off that doubles while workers keep
  dying young (logged each time), and its live gauges are dropped from ``/metrics``;
- SIGHUP: the new config is validated once, here; if it has errors they are logged
  and nothing changes; if not, every ready worker reloads it (SIGHUP) and reports;
- SIGTERM / SIGINT: every worker drains (``shutdown_delay``, then
  ``shutdown_grace``); one still running after that and :data:`STOP_MARGIN` is killed.

All workers share one ``PROMETHEUS_MULTIPROC_DIR`` made for the run, so a scrape
answered by any of them reports the whole host.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import shutil
import signal
import socket
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from proxy.builder import rebuilt
from proxy.config import ServerConfig
from proxy.metrics import MULTIPROC_DIR_ENV
from proxy.pipeline import Pipeline
from proxy.signals import ServingSignals
from proxy.worker import worker_argv

log = logging.getLogger("proxy.supervisor")

#: The first wait before replacing a dead worker; it doubles up to RESTART_BACKOFF_MAX.
RESTART_BACKOFF_FIRST = 0.5
RESTART_BACKOFF_MAX = 30.0
#: A worker that lived this long before dying is replaced after the first back-off again.
RESTART_BACKOFF_RESET = 60.0
#: How long a worker may take to start serving (imports, plugins, key fetches) or to
#: report a reload.
READY_TIMEOUT = 120.0
#: Beyond ``shutdown_delay`` + ``shutdown_grace``, how long SIGTERM waits for the workers.
STOP_MARGIN = 5.0
#: The workers' shared metrics folder: this prefix, the supervisor's pid, a random part.
METRICS_PREFIX = "license-proxy-metrics-"


def sweep_stale_metrics_dirs(root: Path | None = None) -> list[Path]:
    """Remove the metrics folders of supervisors that died without cleaning up (SIGKILL,
    the OOM killer): a Kubernetes ``emptyDir`` keeps ``/tmp`` across container restarts,
    so they would pile up. Returns what was removed."""
    removed = []
    for folder in Path(root or tempfile.gettempdir()).glob(METRICS_PREFIX + "*"):
        owner = folder.name[len(METRICS_PREFIX) :].split("-", 1)[0]
        if not owner.isdigit() or not folder.is_dir():
            continue
        try:
            os.kill(int(owner), 0)
        except ProcessLookupError:
            shutil.rmtree(folder, ignore_errors=True)
            removed.append(folder)
        except PermissionError:
            pass  # alive, and someone else's
    return removed


def reserve_port(host: str, port: int, listener: str) -> socket.socket:
    """Bind (not listen) ``host:port`` with ``SO_REUSEPORT``: the workers' listening sockets
    join it, and nobody without ``SO_REUSEPORT`` can take the port meanwhile."""
    try:
        family, kind, proto, _, address = socket.getaddrinfo(
            host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
        )[0]
        sock = socket.socket(family, kind, proto)
    except OSError as exc:
        raise OSError(f"{listener}: cannot listen on {host}:{port}: {exc}") from None
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        sock.bind(address)
    except OSError as exc:
        sock.close()
        raise OSError(
            f"{listener}: cannot listen on {host}:{port}: {exc.strerror or exc}"
        ) from None
    return sock


def describe_exit(code: int) -> str:
    """``exited with status 3`` or ``was killed by SIGKILL``."""
    if code < 0:
        with contextlib.suppress(ValueError):
            return f"was killed by {signal.Signals(-code).name}"
        return f"was killed by signal {-code}"
    return f"exited with status {code}"


@dataclass(eq=False)
class Worker:
    """One running worker process and the supervisor's ends of its pipes."""

    index: int
    process: asyncio.subprocess.Process
    lifeline: int
    started: float
    ready: asyncio.Future[bool]
    reloads: asyncio.Queue[bool] = field(default_factory=asyncio.Queue)
    reader: asyncio.Task[None] | None = None

    @property
    def pid(self) -> int:
        """The worker's process id."""
        return self.process.pid


class Supervisor:
    """Runs ``count`` worker processes on the listeners of ``server``.

    :param config: the config file the workers read (None: the embedded default).
    :param overrides: what the command line overrides (a partial config document).
    :param validated: the pipeline built from the config at start (not run: its listener
        settings are read).
    :param build: validates the config (on SIGHUP), as the workers will build it.
    """

    def __init__(
        self,
        config: str | None,
        overrides: dict[str, Any],
        validated: Pipeline,
        build: Callable[[], Pipeline],
    ) -> None:
        self.config = config
        self.overrides = dict(overrides)
        self.server: ServerConfig = validated.server
        self.admin = validated.admin
        self.admin_port: int | None = None
        self.count = self.server.worker_count
        self.build = build
        self.workers: dict[int, Worker] = {}
        self._stopping = asyncio.Event()
        self._reload_lock = asyncio.Lock()
        self._reserved: list[socket.socket] = []
        self._keepers: list[asyncio.Task[None]] = []
        self._metrics_dir = ""

    # -- running -----------------------------------------------------------------------

    async def run(self) -> int:
        """Start every worker, serve until SIGTERM/SIGINT, then drain them; the exit status."""
        stop = asyncio.Event()
        signals = ServingSignals(stop, self.reload)
        signals.install()
        try:
            if not await self._start():
                return 1
            await stop.wait()
            log.info("stopping: every worker drains its in-flight requests")
            return 0
        finally:
            signals.remove()
            for task in signals.reloads:
                task.cancel()
            await self._stop()

    async def _start(self) -> bool:
        grpc = reserve_port(self.server.grpc.host, self.server.grpc.port, "server.grpc")
        self._reserved.append(grpc)
        http = reserve_port(self.server.http.host, self.server.http.port, "server.http")
        self._reserved.append(http)
        grpc_port, http_port = grpc.getsockname()[1], http.getsockname()[1]
        if self.admin is not None:
            admin = reserve_port(self.admin.host, self.admin.port, "admin")
            self._reserved.append(admin)
            self.admin_port = admin.getsockname()[1]
            self.overrides["admin"] = {**self.overrides.get("admin", {}), "port": self.admin_port}
        server = self.overrides.get("server", {})
        self.overrides = {
            **self.overrides,
            "server": {
                **server,
                "workers": self.count,
                "grpc": {**server.get("grpc", {}), "port": grpc_port},
                "http": {**server.get("http", {}), "port": http_port},
            },
        }
        sweep_stale_metrics_dirs()
        self._metrics_dir = tempfile.mkdtemp(prefix=f"{METRICS_PREFIX}{os.getpid()}-")
        first = [await self._spawn(index) for index in range(self.count)]
        try:
            async with asyncio.timeout(READY_TIMEOUT):
                ready = await asyncio.gather(*(w.ready for w in first))
        except TimeoutError:
            ready = [w.ready.done() and w.ready.result() for w in first]
        if not all(ready):
            late = [w.index for w, ok in zip(first, ready, strict=True) if not ok]
            log.error("worker(s) %s did not start; stopping", ", ".join(map(str, late)))
            return False
        self._keepers = [asyncio.create_task(self._keep(w)) for w in first]
        log.info(
            "serving gRPC on %s:%d and HTTP on %s:%d with %d workers%s",
            self.server.grpc.host,
            grpc_port,
            self.server.http.host,
            http_port,
            self.count,
            f", the admin API on {self.admin.host}:{self.admin_port}" if self.admin else "",
        )
        return True

    async def _spawn(self, index: int) -> Worker:
        loop = asyncio.get_running_loop()
        status_read, status_write = os.pipe()
        lifeline_read, lifeline_write = os.pipe()
        try:
            process = await asyncio.create_subprocess_exec(
                *worker_argv(
                    config=self.config,
                    index=index,
                    overrides=self.overrides,
                    status_fd=status_write,
                    lifeline_fd=lifeline_read,
                ),
                pass_fds=(status_write, lifeline_read),
                env={**os.environ, MULTIPROC_DIR_ENV: self._metrics_dir},
            )
        except BaseException:
            for fd in (status_read, lifeline_write):
                os.close(fd)
            raise
        finally:
            os.close(status_write)
            os.close(lifeline_read)
        worker = Worker(index, process, lifeline_write, loop.time(), loop.create_future())
        self.workers[index] = worker
        worker.reader = asyncio.create_task(self._read_status(worker, status_read))
        return worker

    async def _read_status(self, worker: Worker, fd: int) -> None:
        loop = asyncio.get_running_loop()
        reader = asyncio.StreamReader()
        transport, _ = await loop.connect_read_pipe(
            lambda: asyncio.StreamReaderProtocol(reader), os.fdopen(fd, "rb", buffering=0)
        )
        try:
            async for raw in reader:
                line = raw.decode(errors="replace").strip()
                if line == "ready" and not worker.ready.done():
                    log.info("worker %d (pid %d) ready", worker.index, worker.pid)
                    worker.ready.set_result(True)
                elif line in ("reloaded", "reload-refused"):
                    worker.reloads.put_nowait(line == "reloaded")
        finally:
            transport.close()
            if not worker.ready.done():
                worker.ready.set_result(False)
            worker.reloads.put_nowait(False)  # a reload waiting on a dead worker ends

    async def _keep(self, worker: Worker) -> None:
        """Wait for the worker to die; unless stopping, replace it after the back-off."""
        backoff = RESTART_BACKOFF_FIRST
        loop = asyncio.get_running_loop()
        while True:
            code = await worker.process.wait()
            self._forget(worker)
            if self._stopping.is_set():
                return
            if loop.time() - worker.started >= RESTART_BACKOFF_RESET:
                backoff = RESTART_BACKOFF_FIRST
            log.warning(
                "worker %d (pid %d) %s; starting a new one in %.1f s",
                worker.index,
                worker.pid,
                describe_exit(code),
                backoff,
            )
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stopping.wait(), backoff)
            if self._stopping.is_set():
                return
            backoff = min(backoff * 2, RESTART_BACKOFF_MAX)
            worker = await self._spawn(worker.index)

    def _forget(self, worker: Worker) -> None:
        """Let go of a worker that exited (once: a closed descriptor number may be reused)."""
        if self.workers.get(worker.index) is worker:
            del self.workers[worker.index]
        if worker.lifeline < 0:
            return
        with contextlib.suppress(OSError):
            os.close(worker.lifeline)
        worker.lifeline = -1
        if self._metrics_dir:
            from prometheus_client import multiprocess

            # Its in-flight requests are gone: drop its live gauges from the host's sum.
            multiprocess.mark_process_dead(worker.pid, self._metrics_dir)

    # -- reload ------------------------------------------------------------------------

    async def reload(self) -> bool:
        """Validate the config once; if it is good, every ready worker reloads it."""
        async with self._reload_lock:
            fresh = await rebuilt(self.build)
            if fresh is None:
                return False
            if fresh.server.worker_count != self.count:
                log.warning("server.workers takes effect only after a restart")
            self.server = fresh.server
            workers = [
                w
                for w in self.workers.values()
                if w.ready.done() and w.ready.result() and w.process.returncode is None
            ]
            for worker in workers:
                while not worker.reloads.empty():
                    worker.reloads.get_nowait()
                with contextlib.suppress(ProcessLookupError):
                    worker.process.send_signal(signal.SIGHUP)
            outcomes = await asyncio.gather(
                *(asyncio.wait_for(w.reloads.get(), READY_TIMEOUT) for w in workers),
                return_exceptions=True,
            )
            done = sum(outcome is True for outcome in outcomes)
            log.info("configuration reloaded by %d of %d workers", done, len(workers))
            return done == len(workers)

    # -- stopping ----------------------------------------------------------------------

    async def _stop(self) -> None:
        self._stopping.set()
        workers = list(self.workers.values())
        for worker in workers:
            with contextlib.suppress(ProcessLookupError):
                worker.process.send_signal(signal.SIGTERM)
        bound = self.server.shutdown_delay + self.server.shutdown_grace + STOP_MARGIN
        waits = [asyncio.create_task(w.process.wait()) for w in workers]
        if waits:
            _, pending = await asyncio.wait(waits, timeout=bound)
            for worker in workers:
                if worker.process.returncode is None:
                    log.warning("worker %d (pid %d) did not stop; killing it", *_ids(worker))
                    with contextlib.suppress(ProcessLookupError):
                        worker.process.kill()
            if pending:
                await asyncio.wait(pending)
        for task in self._keepers:
            task.cancel()
        for worker in workers:
            if worker.reader is not None:
                worker.reader.cancel()
            self._forget(worker)
        for sock in self._reserved:
            sock.close()
        self._reserved.clear()
        if self._metrics_dir:
            shutil.rmtree(self._metrics_dir, ignore_errors=True)


def _ids(worker: Worker) -> tuple[int, int]:
    return worker.index, worker.pid


__all__ = ["Supervisor", "Worker", "describe_exit", "reserve_port", "sweep_stale_metrics_dirs"]
