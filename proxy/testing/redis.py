"""A real ``redis-server`` process on a free loopback port, for tests and benchmarks.

Tests start, kill and restart it themselves (``make test`` only installs the
binary), so they can check what the proxy does while Redis is down and after
it comes back::

    server = RedisServer()
    server.start()
    ...
    server.kill()      # SIGKILL: connections drop mid-flight
    server.start()     # same port, empty data
    server.stop()
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
from pathlib import Path

#: Where Debian's package puts the binary (``make redis-server`` installs it).
DEBIAN_BINARY = "/usr/bin/redis-server"
START_TIMEOUT = 10.0


def redis_binary() -> str | None:
    """The ``redis-server`` binary, or None when it is not installed."""
    found = shutil.which("redis-server")
    if found:
        return found
    return DEBIAN_BINARY if Path(DEBIAN_BINARY).exists() else None


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
    """One ``redis-server`` on 127.0.0.1, no persistence, started and stopped by its owner.

    :param port: the port to listen on (default: a free one, kept across restarts).
    """

    def __init__(self, port: int | None = None) -> None:
        binary = redis_binary()
        if binary is None:
            raise FileNotFoundError("redis-server is not installed (make redis-server)")
        self.binary = binary
        self.port = port or free_port()
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        """``redis://127.0.0.1:PORT/0``."""
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        """Start the server and wait until it answers PING."""
        if self.process is not None and self.process.poll() is None:
            return
        self.process = subprocess.Popen(  # noqa: S603 - our own argv, no shell
            [
                self.binary,
                "--port", str(self.port),
                "--bind", "127.0.0.1",
                "--save", "",
                "--appendonly", "no",
                "--daemonize", "no",
                "--loglevel", "warning",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )  # fmt: skip
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                error = (
                    self.process.stderr.read().decode(errors="replace")
                    if self.process.stderr
                    else ""
                )
                raise RuntimeError(f"redis-server exited at start: {error.strip()[-500:]}")
            try:
                if _command(self.port, "PING", timeout=0.2) == b"+PONG":
                    return
            except OSError:
                pass
            time.sleep(0.02)
        self.stop()
        raise RuntimeError(f"redis-server did not answer on port {self.port}")

    def command(self, *parts: str) -> bytes:
        """Run one command (``FLUSHALL``, ``DBSIZE``...) and return its reply line."""
        return _command(self.port, *parts)

    def flush(self) -> None:
        """Delete every key."""
        self.command("FLUSHALL")

    def kill(self) -> None:
        """SIGKILL the server: no goodbye to its clients."""
        if self.process is not None:
            self.process.kill()
            self.process.wait()
            self._close_pipes()
            self.process = None

    def stop(self) -> None:
        """Stop the server (SIGTERM, then SIGKILL after 5 s)."""
        if self.process is None:
            return
        self.process.terminate()
        try:
            self.process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        self._close_pipes()
        self.process = None

    def _close_pipes(self) -> None:
        if self.process is not None and self.process.stderr is not None:
            self.process.stderr.close()

    def __enter__(self) -> RedisServer:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


__all__ = ["RedisServer", "free_port", "redis_binary"]
