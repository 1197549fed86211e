"""A Redis Cluster on loopback: three masters with a replica each, short failure timeouts."""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path

from proxy.testing.fleet.admin import SLOTS, admin_client, call, wait_until
from proxy.testing.redis import RedisServer, free_port


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
            call(node.port, "CLUSTER", "ADDSLOTSRANGE", index * step, last)
            call(node.port, "CLUSTER", "SET-CONFIG-EPOCH", index + 1)
        for node in self.nodes[1:]:
            call(
                self.nodes[0].port,
                "CLUSTER", "MEET", "127.0.0.1", node.port, self.bus_ports[node.port],
            )  # fmt: skip
        wait_until("every node to meet", lambda: all(self._knows_all(n) for n in self.nodes))
        for master, replica in zip(masters, replicas, strict=True):
            call(replica.port, "CLUSTER", "REPLICATE", self.node_id(master))
        self.wait_healthy()

    def node_id(self, node: RedisServer) -> str:
        """The node's cluster id."""
        return str(call(node.port, "CLUSTER", "MYID"))

    def _nodes_view(self, node: RedisServer) -> list[list[str]]:
        text = call(node.port, "CLUSTER", "NODES")
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
            info = admin_client(node.port)
            try:
                role = info.execute_command("ROLE")[0]
            finally:
                info.close()
            if role == "master":
                found.append(node)
        return found

    def master_for_key(self, key: str) -> RedisServer:
        """The master serving ``key``'s slot now."""
        slot = int(call(self._any_live().port, "CLUSTER", "KEYSLOT", key))
        return self.master_for_slot(slot)

    def master_for_slot(self, slot: int) -> RedisServer:
        """The master serving ``slot`` now."""
        for start, end, master, *_ in call(self._any_live().port, "CLUSTER", "SLOTS"):
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
            info = call(node.port, "CLUSTER", "INFO")
            text = info if isinstance(info, str) else "\n".join(f"{k}:{v}" for k, v in info.items())
            if "cluster_state:ok" not in text:
                return False
        masters = self.masters()
        if len(masters) != self._masters:
            return False
        for node in live:
            if node in masters:
                continue
            replication = admin_client(node.port)
            try:
                if replication.info("replication").get("master_link_status") != "up":
                    return False
            finally:
                replication.close()
        return True

    def wait_healthy(self) -> None:
        """Wait until every node runs, the cluster is ok and every replica is in sync."""
        wait_until(f"the {self.kind} cluster to be healthy", self._healthy)

    def wait_replicated(self) -> None:
        """Wait until every replica has applied everything its master wrote so far."""

        def caught_up() -> bool:
            infos = {}
            for node in self.nodes:
                client = admin_client(node.port)
                try:
                    info = client.info("replication")
                finally:
                    client.close()
                infos[node.port] = info
            for info in infos.values():
                if info.get("role") == "slave":
                    master = infos.get(int(info["master_port"]), {})
                    if info.get("slave_repl_offset") != master.get("master_repl_offset"):
                        return False
            return True

        wait_until("the replicas to catch up", caught_up)

    def wait_promoted(self, old_master: RedisServer) -> RedisServer:
        """Wait until another node serves ``old_master``'s slots; return the new master."""
        seen: list[RedisServer] = []

        def promoted() -> bool:
            masters = self.masters()
            if len(masters) != self._masters or old_master in masters:
                return False
            for node in masters:
                if "cluster_state:ok" not in str(call(node.port, "CLUSTER", "INFO")):
                    return False
            seen[:] = [m for m in masters if m not in self._masters_before]
            return bool(seen)

        wait_until("a replica to take over", promoted)
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
            call(node.port, "FLUSHALL")

    def migrate_slot(
        self, slot: int, target: RedisServer, *, between_keys: Callable[[], None] | None = None
    ) -> int:
        """Move ``slot`` to ``target`` as ``redis-cli --cluster reshard`` does, key by key;
        ``between_keys`` runs after each key moved. Returns the number of keys moved."""
        source = self.master_for_slot(slot)
        if source is target:
            return 0
        source_id, target_id = self.node_id(source), self.node_id(target)
        call(target.port, "CLUSTER", "SETSLOT", slot, "IMPORTING", source_id)
        call(source.port, "CLUSTER", "SETSLOT", slot, "MIGRATING", target_id)
        moved = 0
        while True:
            keys = call(source.port, "CLUSTER", "GETKEYSINSLOT", slot, 10)
            if not keys:
                break
            for key in keys:
                call(source.port, "MIGRATE", "127.0.0.1", target.port, key, 0, 5000)
                moved += 1
                if between_keys is not None:
                    between_keys()
        for node in (target, source, *[m for m in self.masters() if m not in (source, target)]):
            call(node.port, "CLUSTER", "SETSLOT", slot, "NODE", target_id)
        return moved

    def stop(self) -> None:
        """Stop every node and remove the cluster's files."""
        for node in self.nodes:
            node.stop()
        shutil.rmtree(self.workdir, ignore_errors=True)
