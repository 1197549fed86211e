"""A real Redis Cluster and a real Sentinel group on loopback, for tests and benchmarks.

Both are built from :class:`proxy.testing.redis.RedisServer` processes (Debian's
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

from proxy.testing.fleet.admin import command_calls, evalsha_calls, reset_stats
from proxy.testing.fleet.cluster import LocalCluster
from proxy.testing.fleet.sentinel import SentinelGroup, SentinelServer
from proxy.testing.redis import RedisServer, server_binary

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
    "SentinelServer",
    "Target",
    "command_calls",
    "evalsha_calls",
    "reset_stats",
]
