"""Access-rule costs: the IP allow-list at 10 and 10,000 CIDRs, and the state path on memory and Redis.

Run: ``.venv/bin/python -m bench.access`` (``--quick`` for a short run). It
starts its own ``redis-server`` on a free loopback port, a 3-master Redis
Cluster with a replica each and a Sentinel group (master, replica, three
sentinels), and stops them after.

Figures printed:

1. one ``CidrSet`` lookup, and the whole ``access_ip`` rule per request, with
   10 and 10,000 CIDRs in the allow-list (and, for scale, a linear scan);
2. the state rules of one license request (replay + concurrency + two rate
   buckets) as one store call, on memory, on single Redis, on the cluster
   (the subject's keys in one slot, the address bucket in a second, one
   pipeline) and through Sentinel, against one Redis call per rule and a bare
   ``SET NX EX``: wall time and client CPU per request;
3. a whole license request through the pipeline (token, rules, ClearKey
   license; no network but Redis), without access rules, with the IP rule, and
   with every state rule on memory, single Redis, the cluster and Sentinel;
4. failover drills (``proxy.testing.fleet.drill``): a master SIGKILLed under 16
   concurrent callers on the cluster and through Sentinel; the answers, the
   slowest call against the 250 ms timeout, and the over-admissions.
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

from plugins.access.claims import slot_tag, state_key
from plugins.access.ip import IpRule
from proxy.builder import build_pipeline
from proxy.cidr import CidrSet, parse_address
from proxy.encoding import b64url_encode
from proxy.errors import ProxyError
from proxy.model import ClientInfo, LicenseRequest, Principal, RequestContext
from proxy.services import Services
from proxy.state import MemoryStore, RateOp, SessionOp, StateStore, UseOp, open_store
from proxy.testing import proxy_config
from proxy.testing.fleet import LocalCluster, SentinelGroup
from proxy.testing.fleet.drill import failover_drill, subject_tag
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
    """What one request asks (keys as the rules lay them out: the subject's three tagged
    alike, the address bucket in its own slot)."""
    subject = f"user-{i % 1000}"
    tag = slot_tag(subject)
    return [
        RateOp(state_key("rate:subject", subject, tag=tag), interval=1e-6, burst=1_000_000),
        RateOp(state_key("rate:ip", f"10.0.{i % 100}.1"), interval=1e-6, burst=1_000_000),
        UseOp(state_key("replay", "id", "bench", str(i), tag=tag), limit=1, ttl=300),
        SessionOp(state_key("sessions", subject, tag=tag), f"s{i}", limit=1_000_000, ttl=300),
    ]


def _subject_ops(i: int) -> list:
    """The same without the address bucket: one slot."""
    ops = _state_ops(i)
    return [ops[0], *ops[2:]]


async def bench_state(
    server: RedisServer, cluster: LocalCluster, sentinel: SentinelGroup, count: int
) -> None:
    """One store call for all state rules in each mode, against a call per rule and a bare
    SET NX EX."""
    print(f"== State rules of one request: sequential, {count} requests ==")
    print(f"{'path':<58} {'mean us':>8} {'p50 us':>7} {'p99 us':>7} {'CPU us':>7}")
    memory = MemoryStore("bench:")
    single = open_store(server.url, prefix="bench:", timeout=2)
    clustered = open_store(cluster.url, prefix="bench:", timeout=2)
    watched = open_store(sentinel.url, prefix="bench:", timeout=2)
    stores = (memory, single, clustered, watched)
    for store in stores:
        await store.start()
    try:
        now = time.time()

        def one_call(store: StateStore, ops=_state_ops) -> Callable[[int], Awaitable[Any]]:
            return lambda i: store.apply(ops(i), now=now)

        def call_per_rule(store: StateStore) -> Callable[[int], Awaitable[Any]]:
            async def run(i: int) -> None:
                rate_a, rate_b, use, session = _state_ops(i + count)
                await store.apply([rate_a, rate_b], now=now)
                await store.apply([use], now=now)
                await store.apply([session], now=now)

            return run

        client = single._client  # type: ignore[attr-defined]

        async def set_nx_ex(i: int) -> None:
            await client.set(f"bench:plain:{i}", 1, nx=True, ex=300)

        rows = [
            ("memory:   replay+concurrency+2 rate buckets, 1 call", one_call(memory)),
            ("redis:    replay+concurrency+2 rate buckets, 1 EVALSHA", one_call(single)),
            ("redis:    the same, one EVALSHA per rule (3 calls)", call_per_rule(single)),
            ("redis:    a bare SET NX EX (reference)", set_nx_ex),
            (
                "cluster:  replay+concurrency+subject bucket, 1 slot",
                one_call(clustered, _subject_ops),
            ),
            ("cluster:  the same + address bucket, 2 slots, 1 pipeline", one_call(clustered)),
            ("sentinel: replay+concurrency+2 rate buckets, 1 EVALSHA", one_call(watched)),
        ]
        for label, run in rows:
            await run(-1)  # warm up: connection, script cache
            mean, p50, p99, cpu = await _time_requests(run, count)
            print(f"{label:<58} {mean:8.1f} {p50:7.1f} {p99:7.1f} {cpu:7.1f}")
    finally:
        for store in stores:
            await store.close()
    print()


def _pipeline_config(access: dict[str, Any] | None) -> dict[str, Any]:
    config = proxy_config()
    if access is not None:
        config["access"] = access
    return config


async def bench_pipeline(
    server: RedisServer, cluster: LocalCluster, sentinel: SentinelGroup, count: int
) -> None:
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
        ("replay+concurrency+rate, cluster", {**state_rules, "state": {"store": cluster.url}}),
        ("replay+concurrency+rate, sentinel", {**state_rules, "state": {"store": sentinel.url}}),
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


async def bench_failover(cluster: LocalCluster, sentinel: SentinelGroup, rounds: int) -> None:
    """Failover drills: a master killed under 16 concurrent callers, ``rounds`` times each."""
    print(f"== A master SIGKILLed under load (16 callers, timeout 250 ms), {rounds} drills each ==")
    loop = asyncio.get_running_loop()
    for name, fleet in (("cluster", cluster), ("sentinel", sentinel)):
        for _ in range(rounds):
            fleet.restore()
            fleet.flush()
            store = open_store(fleet.url, prefix="drill:", timeout=0.25)
            await store.start()
            if isinstance(fleet, LocalCluster):
                victim = fleet.master_for_key("drill:" + subject_tag("drill-subject-0"))

                def kill(fleet: LocalCluster = fleet, victim: RedisServer = victim) -> None:
                    fleet.kill(victim)

                def recovered(fleet: LocalCluster = fleet, victim: RedisServer = victim) -> Any:
                    return asyncio.to_thread(fleet.wait_promoted, victim)
            else:
                victim = fleet.master()
                kill = victim.kill

                def recovered(fleet: SentinelGroup = fleet, port: int = victim.port) -> Any:
                    return asyncio.to_thread(fleet.wait_failover, port)

            started = loop.time()
            try:
                report = await failover_drill(store, kill, recovered, now=time.time)
            finally:
                await store.close()
            print(f"{name:<9} {report.line()}; drill {loop.time() - started:.1f} s")
    print()


async def main_async(args: argparse.Namespace) -> None:
    """Run every section."""
    bench_cidr(args.lookups)
    cluster, sentinel = LocalCluster(), SentinelGroup()
    with RedisServer() as server:
        cluster.start()
        try:
            sentinel.start()
            try:
                await bench_state(server, cluster, sentinel, args.requests)
                await bench_pipeline(server, cluster, sentinel, args.requests)
                await bench_failover(cluster, sentinel, args.failovers)
            finally:
                sentinel.stop()
        finally:
            cluster.stop()


def main(argv: list[str] | None = None) -> None:
    """Entry point: ``python -m bench.access [--quick]``."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer iterations")
    parser.add_argument(
        "--failovers", type=int, default=None, help="failover drills per mode (default 5)"
    )
    args = parser.parse_args(argv)
    args.lookups = 20_000 if args.quick else 200_000
    args.requests = 500 if args.quick else 5_000
    if args.failovers is None:
        args.failovers = 1 if args.quick else 5
    asyncio.run(main_async(args))


if __name__ == "__main__":
    main()
