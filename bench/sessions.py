"""What license sessions cost (issue 13): recording one, looking one up, renewals end to end.

Run: ``.venv/bin/python -m bench.sessions`` (``--quick`` for a short run). It starts its
own ``redis-server`` on a free loopback port and stops it after.

Figures printed, on memory and single Redis (wall time and client CPU per request):

1. a new Widevine license's state batch (replay, concurrency, a subject rate bucket)
   without and with its license session record (the same one store call);
2. the lookup a renewal or release makes (``StateStore.records``: one ``MGET``);
3. a Widevine renewal through the pipeline (a dry run: no vendor) with sessions
   untracked, tracked (one lookup more), and after its token expired
   (``renewal_grace``: a fresh verification and the lookup).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

from bench.access import _subject_ops, _time_requests
from plugins.vendors.widevine_cloud.sandbox import WidevineCloudSandbox
from proxy.builder import build_pipeline
from proxy.challenge import samples
from proxy.model import ClientInfo, DrmSystem, LicenseRequest, Principal
from proxy.services import Services
from proxy.sessions import record_key
from proxy.state import MemoryStore, RecordMode, RecordOp, open_store
from proxy.testing import FakeClock, proxy_config
from proxy.testing.redis import RedisServer
from proxy.tokens import development_token


def _record_op(i: int) -> RecordOp:
    principal = Principal(f"user-{i % 1000}", "bench", {})
    key = record_key(principal, DrmSystem.WIDEVINE, b"cdm-%d" % i)
    assert key is not None
    payload = json.dumps(
        {"p": "session:" + "0123456789abcdef" * 2, "c": "movie-1", "k": [f"{i:032x}"]}
    )
    return RecordOp(key, RecordMode.BEGIN, ttl=900, payload=payload)


def _sessions_config(store: str, *, tracked: bool) -> dict[str, Any]:
    """A Widevine backend (never called: dry runs) and, when ``tracked``, the issuer's
    renewal grace; the state rules of a deployment either way."""
    config = proxy_config(
        {
            "access": {
                "state": {
                    "store": store,
                    "key_prefix": f"bench-{uuid.uuid4().hex[:8]}:",
                    "timeout": "5s",
                },
                "replay": {},
                "rate_limit": {"subject": {"requests": 1_000_000, "per": 1}},
            },
            "backends": {"wv": WidevineCloudSandbox().backend("http://127.0.0.1:9")},
        }
    )
    config["policies"] = [{"name": "widevine", "backends": ["wv"]}]
    if tracked:
        config["auth"]["issuers"][0]["renewal_grace"] = "1h"
    return config


async def bench_sessions(server: RedisServer, count: int) -> None:
    """What license sessions cost: recording one, looking one up, a renewal end to end."""
    print(f"== License sessions (issue 13), sequential, {count} requests ==")
    print(f"{'path':<62} {'mean us':>8} {'p50 us':>7} {'p99 us':>7} {'CPU us':>7}")
    memory = MemoryStore("bench-sessions:")
    single = open_store(server.url, prefix="bench-sessions:", timeout=2)
    for store in (memory, single):
        await store.start()
    try:
        now = time.time()
        rows: list[tuple[str, Callable[[int], Awaitable[Any]]]] = []
        for name, store in (("memory", memory), ("redis", single)):
            keys = [_record_op(i).key for i in range(count + 1)]

            def batch(ops, store=store) -> Callable[[int], Awaitable[Any]]:
                return lambda n: store.apply(ops(n), now=now)

            def lookup(store=store, keys=keys) -> Callable[[int], Awaitable[Any]]:
                return lambda n: store.records([keys[n]], now=now)

            rows += [
                (f"{name}: a new license's state batch, rules only", batch(_subject_ops)),
                (
                    f"{name}: the same + its license session record",
                    batch(lambda n: [*_subject_ops(n + count), _record_op(n)]),
                ),
                (f"{name}: a renewal's session lookup (records, 1 MGET)", lookup()),
            ]
        for label, run in rows:
            await run(-1)
            mean, p50, p99, cpu = await _time_requests(run, count)
            print(f"{label:<62} {mean:8.1f} {p50:7.1f} {p99:7.1f} {cpu:7.1f}")
    finally:
        for store in (memory, single):
            await store.close()
    for name, store_url in (("memory", "memory"), ("redis", server.url)):
        for label, tracked, expired in (
            ("renewal, sessions untracked", False, False),
            ("renewal, tracked (+1 lookup)", True, False),
            ("renewal, token expired, within renewal_grace", True, True),
        ):
            await _bench_renewals(f"{name}: {label}", store_url, tracked, expired, count)
    print()


async def _bench_renewals(label: str, store: str, tracked: bool, expired: bool, count: int) -> None:
    clock = FakeClock(time.time())
    services = Services(clock=clock)
    pipeline = build_pipeline(_sessions_config(store, tracked=tracked), services=services)
    async with pipeline.running():
        tokens = []
        for i in range(count + 1):
            token = development_token({"sub": f"user-{i % 50}"}, ttl=60, now=clock.time())
            tokens.append(token)
            # the sessions as issued licenses left them (a dry run records nothing)
            principal = Principal(f"user-{i % 50}", "license-proxy-dev", {})
            key = record_key(principal, DrmSystem.WIDEVINE, b"cdm-%d" % i)
            assert key is not None
            await services.state.apply(
                [RecordOp(key, RecordMode.BEGIN, 3600, '{"c":"movie-1"}')], now=clock.time()
            )
        if expired:
            clock.advance(60 + 30 + 60)  # a minute past the tokens' exp and leeway
        renewals = [
            samples.widevine_license_request(
                form="existing_license", request_type=2, request_id=b"cdm-%d" % i
            )
            for i in range(count + 1)
        ]

        async def run(i: int) -> None:
            await pipeline.acquire(
                LicenseRequest(
                    challenge=renewals[i],
                    token=tokens[i],
                    drm_system=DrmSystem.WIDEVINE,
                    client=ClientInfo(ip_address="127.0.0.1", peer="127.0.0.1"),
                    request_id="bench",
                    dry_run=True,
                )
            )

        await run(count)  # warm up
        mean, p50, p99, cpu = await _time_requests(run, count)
    print(f"{label:<62} {mean:8.1f} {p50:7.1f} {p99:7.1f} {cpu:7.1f}")


async def main_async(requests: int) -> None:
    """Run every part against a fresh ``redis-server``."""
    with RedisServer() as server:
        await bench_sessions(server, requests)


def main(argv: list[str] | None = None) -> None:
    """Entry point: ``python -m bench.sessions [--quick]``."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer requests")
    args = parser.parse_args(argv)
    asyncio.run(main_async(500 if args.quick else 5_000))


if __name__ == "__main__":
    main()
