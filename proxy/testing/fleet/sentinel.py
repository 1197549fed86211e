"""A Sentinel group on loopback: a master, its replica and three sentinels (quorum 2)."""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

from proxy.testing.fleet.admin import admin_client, call, wait_until
from proxy.testing.redis import RedisServer


class SentinelServer(RedisServer):
    """One Sentinel process watching ``service`` (same binary, ``--sentinel`` mode)."""

    def __init__(
        self,
        *,
        kind: str,
        service: str,
        master_port: int,
        down_after_ms: int,
        failover_timeout_ms: int,
        workdir: Path,
    ) -> None:
        super().__init__(kind=kind, workdir=workdir)
        self.config = workdir / f"sentinel-{self.port}.conf"
        self.config.write_text(
            f"port {self.port}\n"
            "bind 127.0.0.1\n"
            "daemonize no\n"
            "loglevel warning\n"
            f"dir {workdir}\n"
            f"sentinel monitor {service} 127.0.0.1 {master_port} 2\n"
            f"sentinel down-after-milliseconds {service} {down_after_ms}\n"
            f"sentinel failover-timeout {service} {failover_timeout_ms}\n"
            f"sentinel parallel-syncs {service} 1\n"
        )

    def argv(self) -> list[str]:
        """``SERVER sentinel.conf --sentinel``: Sentinel rewrites its own file."""
        return [self.binary, str(self.config), "--sentinel"]


class SentinelGroup:
    """A master, its replica and three Sentinels (quorum 2) watching them, on loopback.

    :param kind: ``redis`` or ``valkey``.
    :param down_after_ms: ``down-after-milliseconds``: silence before a master counts as down.
    """

    def __init__(
        self,
        *,
        kind: str = "redis",
        service: str = "license-state",
        down_after_ms: int = 300,
        failover_timeout_ms: int = 2000,
    ) -> None:
        self.kind = kind
        self.service = service
        self.workdir = Path(tempfile.mkdtemp(prefix=f"{kind}-sentinel-"))
        master = RedisServer(kind=kind, workdir=self.workdir)
        replica = RedisServer(
            kind=kind, workdir=self.workdir, args=("--replicaof", "127.0.0.1", str(master.port))
        )
        self.data = [master, replica]
        self.sentinels = [
            SentinelServer(
                kind=kind,
                service=service,
                master_port=master.port,
                down_after_ms=down_after_ms,
                failover_timeout_ms=failover_timeout_ms,
                workdir=self.workdir,
            )
            for _ in range(3)
        ]

    @property
    def data_nodes(self) -> list[RedisServer]:
        """The master and its replica."""
        return list(self.data)

    @property
    def url(self) -> str:
        """``redis+sentinel://`` with the three sentinels and the service name."""
        return (
            "redis+sentinel://" + ",".join(s.address for s in self.sentinels) + "/" + self.service
        )

    def start(self) -> None:
        """Start the data nodes and the sentinels; wait until all see one another."""
        try:
            for node in self.data:
                node.start()
            for sentinel in self.sentinels:
                sentinel.start()
            self.wait_ready()
        except BaseException:
            self.stop()
            raise

    def master_port(self) -> int:
        """The master's port as the sentinels name it now."""
        sentinel = next(s for s in self.sentinels if s.running)
        _host, port = call(sentinel.port, "SENTINEL", "GET-MASTER-ADDR-BY-NAME", self.service)
        return int(port)

    def master(self) -> RedisServer:
        """The data node the sentinels name as master."""
        port = self.master_port()
        return next(node for node in self.data if node.port == port)

    def masters(self) -> list[RedisServer]:
        """The master, as a list (the same question a cluster answers)."""
        return [self.master()]

    def _ready(self) -> bool:
        port = self.master_port()
        master = next(node for node in self.data if node.port == port)
        if not master.running or call(port, "ROLE")[0] != "master":
            return False
        for node in self.data:
            if node is master:
                continue
            replication = admin_client(node.port)
            try:
                info = replication.info("replication")
            finally:
                replication.close()
            if (
                info.get("role") != "slave"
                or info.get("master_port") != port
                or info.get("master_link_status") != "up"
            ):
                return False
        for sentinel in self.sentinels:
            state = admin_client(sentinel.port)
            try:
                seen = state.execute_command("SENTINEL", "MASTER", self.service)
            finally:
                state.close()
            seen = dict(zip(seen[::2], seen[1::2], strict=True)) if isinstance(seen, list) else seen
            flags = str(seen.get("flags", ""))
            if int(seen.get("port", 0)) != port or "down" in flags or "failover" in flags:
                return False
            if int(seen.get("num-other-sentinels", 0)) != 2 or int(seen.get("num-slaves", 0)) < 1:
                return False
        return True

    def wait_ready(self) -> None:
        """Wait until the master has a synced replica and every sentinel knows both and the others."""
        wait_until(f"the {self.kind} sentinel group to be ready", self._ready)

    def wait_failover(self, old_port: int) -> RedisServer:
        """Wait until the sentinels name a master other than ``old_port`` and it acts as one."""

        def moved() -> bool:
            port = self.master_port()
            return port != old_port and call(port, "ROLE")[0] == "master"

        wait_until("the sentinels to promote the replica", moved)
        return self.master()

    def restore(self) -> None:
        """Restart stopped data nodes (the sentinels turn them into replicas); wait ready."""
        for node in self.data:
            node.resume()
            if not node.running:
                node.args = ("--replicaof", "127.0.0.1", str(self.master_port()))
                node.start()
        self.wait_ready()

    def flush(self) -> None:
        """Delete every key (on the master; the replica follows)."""
        call(self.master().port, "FLUSHALL")

    def stop(self) -> None:
        """Stop every process and remove the group's files."""
        for process in (*self.sentinels, *self.data):
            process.stop()
        shutil.rmtree(self.workdir, ignore_errors=True)
