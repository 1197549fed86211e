"""What the admin API costs a license request: the revocation check, on memory and on Redis.

Run: ``.venv/bin/python -m bench.admin`` (``--requests N``). It starts its own
``redis-server`` on a free loopback port and stops it after.

Figures printed, sequential requests through the pipeline (no listener; token,
ClearKey license): without ``[admin]``, and with ``[admin.token]`` (revocations
checked after authentication) on the memory store and on Redis; and the check
alone (``Revocations.check``: one ``marks`` call for the subject and the jti).
"""

from __future__ import annotations

import argparse
import asyncio
import time
from typing import Any

from bench.access import CHALLENGE, _time_requests
from proxy.builder import build_pipeline
from proxy.clock import Clock
from proxy.model import ClientInfo, LicenseRequest, Principal
from proxy.revocation import Revocations
from proxy.state import MemoryStore, RedisStore, StateStore
from proxy.testing import proxy_config
from proxy.testing.redis import RedisServer
from proxy.tokens import development_token

ADMIN = {"token": {"issuer": "ops", "secret": "hex:" + "ab" * 32}}


def _config(admin: bool, store: str) -> dict[str, Any]:
    config = proxy_config({"access": {"state": {"store": store}}})
    if admin:
        config["admin"] = dict(ADMIN)
    else:
        config.pop("admin", None)
    return config


async def bench_pipeline(server: RedisServer, count: int) -> None:
    print(f"== One license request through the pipeline (no listener), {count} requests ==")
    print(f"{'case':<46} {'mean us':>8} {'p50 us':>7} {'p99 us':>7} {'CPU us':>7}")
    cases = [
        ("no [admin], memory store", False, "memory"),
        ("[admin.token]: revocations checked, memory", True, "memory"),
        ("no [admin], redis store", False, server.url),
        ("[admin.token]: revocations checked, redis", True, server.url),
    ]
    for label, admin, store in cases:
        pipeline = build_pipeline(_config(admin, store))
        tokens = [development_token({"sub": f"user-{i % 50}"}) for i in range(count + 1)]
        async with pipeline.running():

            async def run(i: int, pipeline: Any = pipeline, tokens: list[str] = tokens) -> None:
                await pipeline.acquire(
                    LicenseRequest(
                        challenge=CHALLENGE,
                        token=tokens[i],
                        client=ClientInfo(ip_address="127.0.0.1", peer="127.0.0.1"),
                        request_id="bench",
                    )
                )

            await run(count)
            mean, p50, p99, cpu = await _time_requests(run, count)
        print(f"{label:<46} {mean:8.1f} {p50:7.1f} {p99:7.1f} {cpu:7.1f}")
    print()


async def bench_check(server: RedisServer, count: int) -> None:
    print(f"== Revocations.check alone (subject, subject@issuer, jti), {count} checks ==")
    print(f"{'store':<46} {'mean us':>8} {'p50 us':>7} {'p99 us':>7} {'CPU us':>7}")
    principal = Principal("user-1", "issuer", {"jti": "0123456789abcdef"})
    stores: list[tuple[str, StateStore]] = [
        ("memory", MemoryStore("bench-admin:")),
        ("redis (one MGET)", RedisStore(server.url, prefix="bench-admin:")),
    ]
    for label, store in stores:
        await store.start()
        try:
            revocations = Revocations(store, Clock())

            async def run(i: int, revocations: Revocations = revocations) -> None:
                await revocations.check(principal)

            await run(0)
            mean, p50, p99, cpu = await _time_requests(run, count)
        finally:
            await store.close()
        print(f"{label:<46} {mean:8.1f} {p50:7.1f} {p99:7.1f} {cpu:7.1f}")
    print()


async def run(args: argparse.Namespace) -> None:
    with RedisServer() as server:
        started = time.perf_counter()
        await bench_check(server, args.requests)
        await bench_pipeline(server, args.requests)
        print(f"({time.perf_counter() - started:.0f} s)")


def main(argv: list[str] | None = None) -> None:
    """Run and print."""
    p = argparse.ArgumentParser(prog="python -m bench.admin", description=__doc__)
    p.add_argument("--requests", type=int, default=3000)
    asyncio.run(run(p.parse_args(argv)))


if __name__ == "__main__":
    main()
