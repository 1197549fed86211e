"""Access-rule costs: the IP allow-list at 10 and 10,000 CIDRs, and the state path on memory and Redis.

Run: ``.venv/bin/python -m bench.access`` (``--quick`` for a short run). It
starts its own ``redis-server`` on a free loopback port and stops it after.

Figures printed:

1. one ``CidrSet`` lookup, and the whole ``access_ip`` rule per request, with
   10 and 10,000 CIDRs in the allow-list (and, for scale, a linear scan);
2. the state rules of one license request (replay + concurrency + two rate
   buckets) as one store call, on memory and on Redis, against one Redis call
   per rule and a bare ``SET NX EX``: wall time and client CPU per request;
3. a whole license request through the pipeline (token, rules, ClearKey
   license; no network but Redis), without access rules, with the IP rule, and
   with every state rule on memory and on Redis.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import ipaddress
import json
import random
import statistics
import time
import timeit
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

from plugins.access.ip import IpRule
from proxy.builder import build_pipeline
from proxy.cidr import CidrSet, parse_address
from proxy.encoding import b64url_encode
from proxy.errors import ProxyError
from proxy.model import ClientInfo, LicenseRequest, Principal, RequestContext
from proxy.services import Services
from proxy.state import MemoryStore, RateOp, RedisStore, SessionOp, StateStore, UseOp
from proxy.testing import proxy_config
from proxy.testing.redis import RedisServer
from proxy.tokens import development_token

KID = uuid.UUID("4060a865-8878-4267-9cbf-91ae5bae1e72").bytes
#: A W3C ClearKey license request for KID.
CHALLENGE = json.dumps({"kids": [b64url_encode(KID)], "type": "temporary"}).encode()


def random_networks(count: int, seed: int = 7) -> list[str]:
    """``count`` distinct networks: mostly IPv4 /16-/28, one in eight IPv6 /32-/64."""
    rng = random.Random(seed)
    networks: set[str] = set()
    while len(networks) < count:
        if rng.random() < 0.125:
            prefix = rng.randint(32, 64)
            net = ipaddress.IPv6Network((rng.getrandbits(128), prefix), strict=False)
        else:
            prefix = rng.randint(16, 28)
            net = ipaddress.IPv4Network((rng.getrandbits(32), prefix), strict=False)
        networks.add(str(net))
    return sorted(networks)


def per_call_ns(function: Callable[[], Any], number: int, repeat: int = 5) -> float:
    """Best-of-``repeat`` nanoseconds per call."""
    return min(timeit.repeat(function, number=number, repeat=repeat)) / number * 1e9


def _probes(networks: list[str], rng: random.Random, count: int) -> tuple[list[str], list[str]]:
    """Addresses inside the networks, and addresses outside all of them."""
    cidrs = CidrSet(networks)
    parsed = [ipaddress.ip_network(n) for n in networks]
    inside = []
    for _ in range(count):
        net = rng.choice(parsed)
        offset = rng.randrange(net.num_addresses)
        inside.append(str(net.network_address + offset))
    outside: list[str] = []
    while len(outside) < count:
        bits, cls = (
            (128, ipaddress.IPv6Address) if rng.random() < 0.125 else (32, ipaddress.IPv4Address)
        )
        candidate = str(cls(rng.getrandbits(bits)))
        if candidate not in cidrs:
            outside.append(candidate)
    return inside, outside


def bench_cidr(number: int) -> None:
    """Lookups and the whole IP rule with 10 and 10,000 CIDRs, on the allow and deny paths."""
    print("== IP allow-list: per-request cost (best of 5) ==")
    rng = random.Random(1)
    principal = Principal("bench", "bench", {})
    figures = {}
    for size in (10, 10_000):
        networks = random_networks(size)
        started = time.perf_counter()
        cidrs = CidrSet(networks)
        compile_ms = (time.perf_counter() - started) * 1000
        rule = IpRule()
        rule.lists.allow = cidrs
        inside, outside = _probes(networks, rng, 1024)
        row = [f"{size:>6} CIDRs: compile {compile_ms:6.1f} ms"]
        for path, probes in (("allowed", inside), ("refused", outside)):
            parsed = [parse_address(p) for p in probes]
            contexts = [
                RequestContext(
                    request=LicenseRequest(challenge=b"", client=ClientInfo(ip_address=p)),
                    services=Services(),
                    request_id="bench",
                )
                for p in probes
            ]
            counter = iter(range(1 << 62))

            def lookup(cidrs=cidrs, parsed=parsed, counter=counter) -> bool:
                return parsed[next(counter) % len(parsed)] in cidrs

            def whole_rule(rule=rule, contexts=contexts, counter=counter) -> None:
                with contextlib.suppress(ProxyError):
                    rule.proxy_authorize(contexts[next(counter) % len(contexts)], principal)

            figures[size, path] = per_call_ns(lookup, number), per_call_ns(whole_rule, number)
            row.append(
                f"{path}: lookup {figures[size, path][0]:4.0f} ns,"
                f" rule {figures[size, path][1] / 1000:5.2f} us"
            )
        print(" | ".join(row))
    for path in ("allowed", "refused"):
        extra = (figures[10_000, path][1] - figures[10, path][1]) / 1000
        print(f"10,000 vs 10 CIDRs, {path} request: {extra:+.2f} us per request")
    networks = [ipaddress.ip_network(n) for n in random_networks(10_000)]
    ip = ipaddress.ip_address("192.0.2.1")
    scan = per_call_ns(lambda: any(ip in n for n in networks), max(1, number // 2000), 3)
    print(f"(for scale: a linear scan of 10,000 networks takes {scan / 1000:,.0f} us)")
    print()


async def _time_requests(
    run: Callable[[int], Awaitable[Any]], count: int
) -> tuple[float, float, float, float]:
    """``(mean us, p50 us, p99 us, client CPU us)`` per sequential request."""
    samples = []
    cpu = time.process_time()
    for i in range(count):
        started = time.perf_counter()
        await run(i)
        samples.append((time.perf_counter() - started) * 1e6)
    cpu_us = (time.process_time() - cpu) / count * 1e6
    samples.sort()
    return (
        statistics.fmean(samples),
        samples[len(samples) // 2],
        samples[int(len(samples) * 0.99)],
        cpu_us,
    )


def _state_ops(i: int) -> list:
    return [
        RateOp("rate:subject:bench", interval=1e-6, burst=1_000_000),
        RateOp(f"rate:ip:{i % 100}", interval=1e-6, burst=1_000_000),
        UseOp(f"replay:{i}", limit=1, ttl=300),
        SessionOp(f"sessions:{i % 1000}", f"s{i}", limit=1_000_000, ttl=300),
    ]


async def bench_state(server: RedisServer, count: int) -> None:
    """One store call for all state rules, against a call per rule and a bare SET NX EX."""
    print(f"== State rules of one request: sequential, {count} requests ==")
    print(f"{'path':<52} {'mean us':>8} {'p50 us':>7} {'p99 us':>7} {'CPU us':>7}")
    memory = MemoryStore("bench:")
    redis = RedisStore(server.url, prefix="bench:", timeout=2)
    await memory.start()
    await redis.start()
    try:
        now = time.time()

        def one_call(store: StateStore) -> Callable[[int], Awaitable[Any]]:
            return lambda i: store.apply(_state_ops(i), now=now)

        def call_per_rule(store: StateStore) -> Callable[[int], Awaitable[Any]]:
            async def run(i: int) -> None:
                rate_a, rate_b, use, session = _state_ops(i + count)
                await store.apply([rate_a, rate_b], now=now)
                await store.apply([use], now=now)
                await store.apply([session], now=now)

            return run

        client = redis._client

        async def set_nx_ex(i: int) -> None:
            await client.set(f"bench:plain:{i}", 1, nx=True, ex=300)

        rows = [
            ("memory: replay+concurrency+2 rate buckets, 1 call", one_call(memory)),
            ("redis:  replay+concurrency+2 rate buckets, 1 EVALSHA", one_call(redis)),
            ("redis:  the same, one EVALSHA per rule (3 calls)", call_per_rule(redis)),
            ("redis:  a bare SET NX EX (reference)", set_nx_ex),
        ]
        for label, run in rows:
            await run(-1)  # warm up: connection, script cache
            mean, p50, p99, cpu = await _time_requests(run, count)
            print(f"{label:<52} {mean:8.1f} {p50:7.1f} {p99:7.1f} {cpu:7.1f}")
    finally:
        await redis.close()
        await memory.close()
    print()


def _pipeline_config(access: dict[str, Any] | None) -> dict[str, Any]:
    config = proxy_config()
    if access is not None:
        config["access"] = access
    return config


async def bench_pipeline(server: RedisServer, count: int) -> None:
    """A whole license request through the pipeline with each rule set."""
    print(f"== One license request through the pipeline (no listener), {count} requests ==")
    print(f"{'access rules':<44} {'mean us':>8} {'p50 us':>7} {'p99 us':>7} {'CPU us':>7}")
    state_rules = {
        "replay": {},
        "concurrency": {"limit": 1_000_000},
        "rate_limit": {
            "subject": {"requests": 1_000_000, "per": 1},
            "client_ip": {"requests": 1_000_000, "per": 1},
        },
    }
    cases = [
        ("none", None),
        ("access_ip, 10 CIDRs", {"ip": {"allow": ["127.0.0.0/8", *random_networks(9)]}}),
        ("access_ip, 10,000 CIDRs", {"ip": {"allow": ["127.0.0.0/8", *random_networks(9_999)]}}),
        ("replay+concurrency+rate, memory", {**state_rules, "state": {"store": "memory"}}),
        ("replay+concurrency+rate, redis", {**state_rules, "state": {"store": server.url}}),
    ]
    challenge = CHALLENGE
    for label, access in cases:
        pipeline = build_pipeline(_pipeline_config(access))
        tokens = [development_token({"sub": f"user-{i % 50}"}) for i in range(count + 1)]
        async with pipeline.running():

            async def run(i: int, pipeline=pipeline, tokens=tokens) -> None:
                await pipeline.acquire(
                    LicenseRequest(
                        challenge=challenge,
                        token=tokens[i],
                        content_id=f"title-{i}",
                        client=ClientInfo(ip_address="127.0.0.1", peer="127.0.0.1"),
                        request_id="bench",
                    )
                )

            await run(count)  # warm up
            mean, p50, p99, cpu = await _time_requests(run, count)
        print(f"{label:<44} {mean:8.1f} {p50:7.1f} {p99:7.1f} {cpu:7.1f}")
    print()


async def main_async(args: argparse.Namespace) -> None:
    """Run every section."""
    bench_cidr(args.lookups)
    with RedisServer() as server:
        await bench_state(server, args.requests)
        await bench_pipeline(server, args.requests)


def main(argv: list[str] | None = None) -> None:
    """Entry point: ``python -m bench.access [--quick]``."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer iterations")
    args = parser.parse_args(argv)
    args.lookups = 20_000 if args.quick else 200_000
    args.requests = 500 if args.quick else 5_000
    asyncio.run(main_async(args))


if __name__ == "__main__":
    main()
