"""Two ``license-proxy serve`` processes on one Redis agree on license sessions: a session one
replica licensed is renewed through the other after the token expired, and a playback one
replica stopped is refused at its next renewal on the other."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator

import pytest_asyncio

from plugins.vendors.widevine_cloud.sandbox import WidevineCloudSandbox
from proxy.testing.emulator import RunningEmulator, start_emulator
from tests.replica_support import Replica, replica_config
from tests.session_support import VENDOR, new_license, renewal, widevine

RULES = """
[access.concurrency]
limit = 1
mode = "stop_oldest"
heartbeat_timeout = "5m"

[backends.{vendor}]
{backend}

[[policies]]
name = "widevine"
priority = 10
backends = ["{vendor}"]
match = {{ claims = {{ vendor = "{vendor}" }} }}
"""


@pytest_asyncio.fixture
async def emulator() -> AsyncIterator[tuple[WidevineCloudSandbox, RunningEmulator]]:
    sandbox = WidevineCloudSandbox()
    running = await start_emulator(sandbox.emulator())
    try:
        yield sandbox, running
    finally:
        await running.stop()


@pytest_asyncio.fixture
async def replicas(tmp_path, redis_server, emulator) -> AsyncIterator[tuple[Replica, Replica]]:
    sandbox, running = emulator
    backend = "\n".join(f'{k} = "{v}"' for k, v in sandbox.backend(running.url).items())
    rules = RULES.format(vendor=VENDOR, backend=backend)
    started = []
    for name in ("a", "b"):
        config = tmp_path / f"{name}.toml"
        text = replica_config(
            redis_server.url,
            fail_open=False,
            rules=rules,
            issuer_extra='leeway = 0\nrenewal_grace = "10m"',
        )
        config.write_text(text)
        started.append(Replica(name, config, tmp_path / f"{name}.log"))
    try:
        for replica in started:
            await replica.start()
        for replica in started:
            await replica.wait_serving()
        yield started[0], started[1]
    finally:
        for replica in started:
            with contextlib.suppress(ProcessLookupError):
                await replica.stop()


async def test_two_replicas_agree_on_sessions_and_playbacks(replicas, dev_token):
    a, b = replicas
    expires = time.time() + 0.5
    short = dev_token({"sub": "alice", "vendor": VENDOR, "exp": expires})
    assert (await widevine(a, short, new_license(b"cdm-1"))).ok
    await asyncio.sleep(max(0.0, expires + 0.05 - time.time()))  # no leeway: expired now
    # b renews the session a licensed, with the token that has expired since
    assert (await widevine(b, short, renewal(b"cdm-1"))).ok
    assert (await widevine(b, short, renewal(b"never-licensed"))).reason == "TOKEN_EXPIRED"
    assert (await widevine(a, short, new_license(b"cdm-2"))).reason == "TOKEN_EXPIRED"
    # a second playback through b stops a's (one at a time, stop_oldest) ...
    fresh = dev_token({"sub": "alice", "vendor": VENDOR})
    phone = (("cmcd-session", 'sid="phone"'),)
    assert (await widevine(b, fresh, new_license(b"cdm-3"), metadata=phone)).ok
    # ... and a refuses the stopped playback's next renewal, expired token or not
    assert (await widevine(a, short, renewal(b"cdm-1"))).reason == "CONCURRENCY_LIMIT_EXCEEDED"
    assert (await widevine(a, fresh, renewal(b"cdm-1"))).reason == "CONCURRENCY_LIMIT_EXCEEDED"
    assert (await widevine(a, fresh, renewal(b"cdm-3"))).ok
