"""A real Redis Cluster and a real Sentinel group on loopback, for tests and benchmarks.

Both are built from :class:`proxy.redisproc.RedisServer` processes (Debian's
``redis-server`` or a ``valkey-server``) with short failure timeouts, so a
test can kill a master and see a replica promoted within a second or two::

    cluster = LocalCluster()            # 3 masters, a replica each
    cluster.start()
    store_url = cluster.url             # redis+cluster://127.0.0.1:P1,...
    victim = cluster.master_for_key("license-proxy:{tag}x")
    victim.kill()
    cluster.wait_promoted(victim)       # its replica took over
    cluster.restore()                   # the victim is back, as a replica
    cluster.stop()

    group = SentinelGroup()             # a master, a replica, three sentinels
    group.start()
    group.master().kill()
    group.wait_failover(old_port)
"""

from __future__ import annotations

import contextlib
import shutil
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from proxy.redisproc import RedisServer, free_port, server_binary

#: Seconds to wait for a cluster to form or a failover to finish before giving up.
FLEET_TIMEOUT = 30.0
#: Hash slots of a Redis Cluster.
SLOTS = 16384


def _admin(port: int) -> Any:
    """A short-lived synchronous client for administration commands."""
    import redis

    return redis.Redis(
        host="127.0.0.1",
        port=port,
        socket_timeout=2,
        socket_connect_timeout=2,
        decode_responses=True,
    )


def _wait(what: str, check: Callable[[], bool], timeout: float = FLEET_TIMEOUT) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(Exception):  # a node still starting or just killed
            if check():
                return
        time.sleep(0.05)
    raise RuntimeError(f"timed out waiting for {what}")


def _call(port: int, *args: Any) -> Any:
    client = _admin(port)
    try:
        return client.execute_command(*args)
    finally:
        client.close()


def evalsha_calls(servers: list[RedisServer]) -> int:
    """``EVALSHA`` calls counted by ``INFO commandstats`` over ``servers``."""
    total = 0
    for server in servers:
        client = _admin(server.port)
        try:
            stats = client.info("commandstats")
        finally:
            client.close()
        total += int(stats.get("cmdstat_evalsha", {}).get("calls", 0))
    return total


def reset_stats(servers: list[RedisServer]) -> None:
    """``CONFIG RESETSTAT`` on every server."""
    for server in servers:
        _call(server.port, "CONFIG", "RESETSTAT")


class LocalCluster:
    """A Redis Cluster of ``masters`` masters with one replica each, on loopback.

    :param kind: ``redis`` or ``valkey``.
    :param node_timeout_ms: ``cluster-node-timeout``: how long a silent master has
        before its replica takes over.
    """

    def __init__(
        self, *, kind: str = "redis", masters: int = 3, node_timeout_ms: int = 500
    ) -> None:
        self.kind = kind
        self.workdir = Path(tempfile.mkdtemp(prefix=f"{kind}-cluster-"))
        options = (
            "--cluster-enabled", "yes",
            "--cluster-node-timeout", str(node_timeout_ms),
            # a replica always counts as fresh enough to take over (the test kills at will)
            "--cluster-replica-validity-factor", "0",
        )  # fmt: skip
        self.nodes = []
        self.bus_ports: dict[int, int] = {}
        for _ in range(masters * 2):
            node = RedisServer(kind=kind, args=options, workdir=self.workdir)
            self.bus_ports[node.port] = free_port()
            node.args = (
                *options,
                "--cluster-config-file", f"nodes-{node.port}.conf",
                # the bus port defaults to port + 10000, which may not exist for a high port
                "--cluster-port", str(self.bus_ports[node.port]),
            )  # fmt: skip
            self.nodes.append(node)
        self._masters = masters

    @property
    def data_nodes(self) -> list[RedisServer]:
        """Every node, masters and replicas."""
        return list(self.nodes)

    @property
    def url(self) -> str:
        """``redis+cluster://`` with every node as a seed."""
        return "redis+cluster://" + ",".join(node.address for node in self.nodes)

    def by_port(self, port: int) -> RedisServer:
        """The node listening on ``port``."""
        return next(node for node in self.nodes if node.port == port)

    def start(self) -> None:
        """Start the nodes, hand out the slots, pair the replicas, wait for ``cluster_state:ok``."""
        try:
            self._form()
        except BaseException:
            self.stop()
            raise

    def _form(self) -> None:
        for node in self.nodes:
            node.start()
        masters, replicas = self.nodes[: self._masters], self.nodes[self._masters :]
        step = SLOTS // len(masters)
        for index, node in enumerate(masters):
            last = SLOTS - 1 if index == len(masters) - 1 else (index + 1) * step - 1
            _call(node.port, "CLUSTER", "ADDSLOTSRANGE", index * step, last)
            _call(node.port, "CLUSTER", "SET-CONFIG-EPOCH", index + 1)
        for node in self.nodes[1:]:
            _call(
                self.nodes[0].port,
                "CLUSTER", "MEET", "127.0.0.1", node.port, self.bus_ports[node.port],
            )  # fmt: skip
        _wait("every node to meet", lambda: all(self._knows_all(n) for n in self.nodes))
        for master, replica in zip(masters, replicas, strict=True):
            _call(replica.port, "CLUSTER", "REPLICATE", self.node_id(master))
        self.wait_healthy()

    def node_id(self, node: RedisServer) -> str:
        """The node's cluster id."""
        return str(_call(node.port, "CLUSTER", "MYID"))

    def _nodes_view(self, node: RedisServer) -> list[list[str]]:
        text = _call(node.port, "CLUSTER", "NODES")
        if isinstance(text, dict):  # redis-py parses it when it can
            return [
                [info["node_id"], address, info["flags"], info["master_id"], info["connected"]]
                for address, info in text.items()
            ]
        return [line.split() for line in str(text).splitlines() if line.strip()]

    def _knows_all(self, node: RedisServer) -> bool:
        return len(self._nodes_view(node)) == len(self.nodes)

    def masters(self) -> list[RedisServer]:
        """The running nodes that are masters now, as the cluster itself says."""
        found = []
        for node in self.nodes:
            if not node.running or node.paused:
                continue
            info = _admin(node.port)
            try:
                role = info.execute_command("ROLE")[0]
            finally:
                info.close()
            if role == "master":
                found.append(node)
        return found

    def master_for_key(self, key: str) -> RedisServer:
        """The master serving ``key``'s slot now."""
        slot = int(_call(self._any_live().port, "CLUSTER", "KEYSLOT", key))
        return self.master_for_slot(slot)

    def master_for_slot(self, slot: int) -> RedisServer:
        """The master serving ``slot`` now."""
        for start, end, master, *_ in _call(self._any_live().port, "CLUSTER", "SLOTS"):
            if int(start) <= slot <= int(end):
                return self.by_port(int(master[1]))
        raise LookupError(f"slot {slot} is not served")

    def _any_live(self) -> RedisServer:
        return next(node for node in self.nodes if node.running and not node.paused)

    def _healthy(self) -> bool:
        live = [node for node in self.nodes if node.running]
        if len(live) != len(self.nodes):
            return False
        for node in live:
            info = _call(node.port, "CLUSTER", "INFO")
            text = info if isinstance(info, str) else "\n".join(f"{k}:{v}" for k, v in info.items())
            if "cluster_state:ok" not in text:
                return False
        masters = self.masters()
        if len(masters) != self._masters:
            return False
        for node in live:
            if node in masters:
                continue
            replication = _admin(node.port)
            try:
                if replication.info("replication").get("master_link_status") != "up":
                    return False
            finally:
                replication.close()
        return True

    def wait_healthy(self) -> None:
        """Wait until every node runs, the cluster is ok and every replica is in sync."""
        _wait(f"the {self.kind} cluster to be healthy", self._healthy)

    def wait_promoted(self, old_master: RedisServer) -> RedisServer:
        """Wait until another node serves ``old_master``'s slots; return the new master."""
        seen: list[RedisServer] = []

        def promoted() -> bool:
            masters = self.masters()
            if len(masters) != self._masters or old_master in masters:
                return False
            for node in masters:
                if "cluster_state:ok" not in str(_call(node.port, "CLUSTER", "INFO")):
                    return False
            seen[:] = [m for m in masters if m not in self._masters_before]
            return bool(seen)

        _wait("a replica to take over", promoted)
        return seen[0]

    def kill(self, node: RedisServer) -> None:
        """SIGKILL ``node`` (remembering which nodes were masters before)."""
        self._masters_before = self.masters()
        node.kill()

    def restore(self) -> None:
        """Restart stopped nodes (they rejoin as replicas), resume paused ones, wait healthy."""
        for node in self.nodes:
            node.resume()
            if not node.running:
                node.start()
        self.wait_healthy()

    def flush(self) -> None:
        """Delete every key (on the masters; the replicas follow)."""
        for node in self.masters():
            _call(node.port, "FLUSHALL")

    def migrate_slot(
        self, slot: int, target: RedisServer, *, between_keys: Callable[[], None] | None = None
    ) -> int:
        """Move ``slot`` to ``target`` as ``redis-cli --cluster reshard`` does, key by key;
        ``between_keys`` runs after each key moved. Returns the number of keys moved."""
        source = self.master_for_slot(slot)
        if source is target:
            return 0
        source_id, target_id = self.node_id(source), self.node_id(target)
        _call(target.port, "CLUSTER", "SETSLOT", slot, "IMPORTING", source_id)
        _call(source.port, "CLUSTER", "SETSLOT", slot, "MIGRATING", target_id)
        moved = 0
        while True:
            keys = _call(source.port, "CLUSTER", "GETKEYSINSLOT", slot, 10)
            if not keys:
                break
            for key in keys:
                _call(source.port, "MIGRATE", "127.0.0.1", target.port, key, 0, 5000)
                moved += 1
                if between_keys is not None:
                    between_keys()
        for node in (target, source, *[m for m in self.masters() if m not in (source, target)]):
            _call(node.port, "CLUSTER", "SETSLOT", slot, "NODE", target_id)
        return moved

    def stop(self) -> None:
        """Stop every node and remove the cluster's files."""
        for node in self.nodes:
            node.stop()
        shutil.rmtree(self.workdir, ignore_errors=True)


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
        _host, port = _call(sentinel.port, "SENTINEL", "GET-MASTER-ADDR-BY-NAME", self.service)
        return int(port)

    def master(self) -> RedisServer:
        """The data node the sentinels name as master."""
        port = self.master_port()
        return next(node for node in self.data if node.port == port)

    def _ready(self) -> bool:
        port = self.master_port()
        master = next(node for node in self.data if node.port == port)
        if not master.running or _call(port, "ROLE")[0] != "master":
            return False
        for node in self.data:
            if node is master:
                continue
            replication = _admin(node.port)
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
            state = _admin(sentinel.port)
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
        _wait(f"the {self.kind} sentinel group to be ready", self._ready)

    def wait_failover(self, old_port: int) -> RedisServer:
        """Wait until the sentinels name a master other than ``old_port`` and it acts as one."""

        def moved() -> bool:
            port = self.master_port()
            return port != old_port and _call(port, "ROLE")[0] == "master"

        _wait("the sentinels to promote the replica", moved)
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
        _call(self.master().port, "FLUSHALL")

    def stop(self) -> None:
        """Stop every process and remove the group's files."""
        for process in (*self.sentinels, *self.data):
            process.stop()
        shutil.rmtree(self.workdir, ignore_errors=True)


#: Every store target a test may ask for: KIND or KIND-cluster or KIND-sentinel.
TARGETS = (
    "redis",
    "redis-cluster",
    "redis-sentinel",
    "valkey",
    "valkey-cluster",
    "valkey-sentinel",
)

Target = RedisServer | LocalCluster | SentinelGroup


class Fleet:
    """Servers of every target, each started the first time a test asks for it and kept
    for the rest of the session (a cluster takes seconds to form)."""

    def __init__(self) -> None:
        self._started: dict[str, Target] = {}

    @staticmethod
    def installed(target: str) -> bool:
        """True when the target's server binary is installed."""
        return server_binary(target.partition("-")[0]) is not None

    def get(self, target: str) -> Target:
        """The running target, healthy again (whatever the last test did) and emptied."""
        if target not in TARGETS:
            raise ValueError(f"unknown store target {target!r}")
        fleet = self._started.get(target)
        if fleet is None:
            kind, _, mode = target.partition("-")
            fleet = {"": RedisServer, "cluster": LocalCluster, "sentinel": SentinelGroup}[mode](
                kind=kind
            )
            fleet.start()
            self._started[target] = fleet
        fleet.restore()
        fleet.flush()
        return fleet

    def stop(self) -> None:
        """Stop everything started."""
        for fleet in self._started.values():
            fleet.stop()
        self._started.clear()


__all__ = [
    "TARGETS",
    "Fleet",
    "LocalCluster",
    "SentinelGroup",
    "Target",
    "evalsha_calls",
    "reset_stats",
]
