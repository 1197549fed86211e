"""Administration of the test servers: short-lived clients, waiting, command counts."""

from __future__ import annotations

import contextlib
import time
from collections import Counter
from collections.abc import Callable
from typing import Any

from proxy.testing.redis import RedisServer

#: Seconds to wait for a cluster to form or a failover to finish before giving up.
FLEET_TIMEOUT = 30.0
#: Hash slots of a Redis Cluster.
SLOTS = 16384


def admin_client(port: int) -> Any:
    """A short-lived synchronous client for administration commands."""
    import redis

    return redis.Redis(
        host="127.0.0.1",
        port=port,
        socket_timeout=2,
        socket_connect_timeout=2,
        decode_responses=True,
    )


def wait_until(what: str, check: Callable[[], bool], timeout: float = FLEET_TIMEOUT) -> None:
    """Poll ``check`` until it is true (errors count as not yet); give up after ``timeout``."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(Exception):  # a node still starting or just killed
            if check():
                return
        time.sleep(0.05)
    raise RuntimeError(f"timed out waiting for {what}")


def call(port: int, *args: Any) -> Any:
    """Run one command on the server at ``port`` and return its parsed reply."""
    client = admin_client(port)
    try:
        return client.execute_command(*args)
    finally:
        client.close()


def command_calls(servers: list[RedisServer]) -> Counter[str]:
    """Calls per command (``evalsha``, ``script|load``...) that ``INFO commandstats``
    counts over ``servers`` since their last :func:`reset_stats`."""
    total: Counter[str] = Counter()
    for server in servers:
        client = admin_client(server.port)
        try:
            stats = client.info("commandstats")
        finally:
            client.close()
        for name, stat in stats.items():
            total[name.removeprefix("cmdstat_")] += int(stat.get("calls", 0))
    return total


def evalsha_calls(servers: list[RedisServer]) -> int:
    """``EVALSHA`` calls counted by ``INFO commandstats`` over ``servers``."""
    return command_calls(servers)["evalsha"]


def reset_stats(servers: list[RedisServer]) -> None:
    """``CONFIG RESETSTAT`` on every server."""
    for server in servers:
        call(server.port, "CONFIG", "RESETSTAT")
