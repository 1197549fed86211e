"""One worker process of the supervisor (:mod:`proxy.supervisor`): ``python -m proxy.worker``.

A worker is an ordinary ``serve`` (both listeners on one loop, SIGTERM drains,
SIGHUP reloads) bound with ``SO_REUSEPORT`` to the ports the supervisor chose,
so the kernel spreads connections over the workers. Two pipes tie it to the
supervisor: it writes ``ready`` and each reload's outcome on the *status* pipe,
and it drains and exits when the *lifeline* pipe reaches end of file, which
happens when the supervisor is gone, however it died.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import os
import signal
import sys
from collections.abc import Sequence
from typing import Any

from proxy import event_loop
from proxy.builder import build_pipeline, load_config, rebuilt
from proxy.errors import ConfigError
from proxy.logs import setup_logging
from proxy.overrides import with_overrides
from proxy.pipeline import Pipeline

log = logging.getLogger("proxy.worker")


def build(config: str | None, overrides: dict[str, Any] | None = None) -> Pipeline:
    """Read the config file (or the embedded default), apply the command line's overrides
    (a partial document: :func:`proxy.overrides.with_overrides`), and build the pipeline;
    ConfigError lists every mistake."""
    raw, base_dir = load_config(config)
    return build_pipeline(with_overrides(raw, overrides or {}), base_dir=base_dir)


class StatusPipe:
    """The worker's end of the status pipe: one line per event."""

    def __init__(self, fd: int) -> None:
        self._fd = fd

    def send(self, line: str) -> None:
        """Write ``line``; a supervisor that stopped reading is not an error."""
        with contextlib.suppress(OSError):
            os.write(self._fd, line.encode() + b"\n")


def worker_argv(
    *,
    config: str | None,
    index: int,
    overrides: dict[str, Any],
    status_fd: int,
    lifeline_fd: int,
) -> list[str]:
    """The command line that starts worker ``index``."""
    import json

    argv = [sys.executable, "-m", "proxy.worker", "--index", str(index)]
    argv += ["--overrides", json.dumps(overrides), "--status-fd", str(status_fd)]
    argv += ["--lifeline-fd", str(lifeline_fd)]
    if config is not None:
        argv += ["--config", config]
    return argv


async def _serve(app: Any, status: StatusPipe, lifeline_fd: int) -> None:
    loop = asyncio.get_running_loop()
    orphaned = asyncio.Event()
    # The lifeline becomes readable only at end of file: the supervisor is gone.
    loop.add_reader(lifeline_fd, orphaned.set)
    try:
        await app.serve_forever(stop=orphaned, on_ready=lambda: status.send("ready"))
    finally:
        loop.remove_reader(lifeline_fd)


def main(argv: Sequence[str] | None = None) -> int:
    """Serve as worker ``--index`` until SIGTERM or the supervisor's end."""
    import json

    from proxy.server import ProxyApp

    # A SIGHUP before the loop handles it must not kill the worker (the default action).
    signal.signal(signal.SIGHUP, signal.SIG_IGN)
    supervisor = os.getppid()
    parser = argparse.ArgumentParser(prog="python -m proxy.worker")
    parser.add_argument("--config")
    parser.add_argument("--index", type=int, required=True)
    parser.add_argument("--overrides", default="{}", help="config overrides, a JSON document")
    parser.add_argument("--status-fd", type=int, required=True)
    parser.add_argument("--lifeline-fd", type=int, required=True)
    args = parser.parse_args(argv)
    overrides = json.loads(args.overrides)
    status = StatusPipe(args.status_fd)
    try:
        pipeline = build(args.config, overrides)
    except ConfigError as exc:
        for path, message in exc.errors:
            print(f"worker {args.index}: {path}: {message}", file=sys.stderr)
        return 2
    setup_logging(pipeline.log.level, pipeline.log.format)

    def rebuild() -> Pipeline:
        fresh = build(args.config, overrides)
        setup_logging(fresh.log.level, fresh.log.format)
        return fresh

    async def reload_every_worker() -> bool:
        # The admin API's reload: this worker checks the config, then the supervisor has
        # every worker reload it (as its SIGHUP does); the answer does not wait for them.
        if await rebuilt(lambda: build(args.config, overrides)) is None:
            return False
        if os.getppid() != supervisor:
            log.error("reload refused: the supervisor is gone")
            return False
        os.kill(supervisor, signal.SIGHUP)
        return True

    app = ProxyApp(
        pipeline,
        rebuild=rebuild,
        access_log=pipeline.log.access,
        reuse_port=True,
        worker_id=str(args.index),
    )
    app.on_reload = lambda ok: status.send("reloaded" if ok else "reload-refused")
    app.admin_reload = reload_every_worker
    try:
        event_loop.run(_serve(app, status, args.lifeline_fd), pipeline.server.event_loop)
    except OSError as exc:
        print(f"worker {args.index} cannot start: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
