"""Replicas sharing one Redis: real ``license-proxy serve`` processes, each with its own config.

A token used on one replica is refused on the other; a burst of new sessions
spread over both admits exactly the limit; killing Redis gives each replica its
configured answer, and restarting Redis brings them back without a restart.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

import grpc
import pytest_asyncio

from tests.access_support import Answer, grpc_call, http_call
from tests.replica_support import Replica, replica_config


@pytest_asyncio.fixture
async def replicas(tmp_path, redis_server) -> AsyncIterator[dict[str, Replica]]:
    """Two fail-closed replicas and one fail-open replica on the test's Redis."""
    started: dict[str, Replica] = {}
    for name, fail_open in (("a", False), ("b", False), ("open", True)):
        config = tmp_path / f"{name}.toml"
        config.write_text(replica_config(redis_server.url, fail_open=fail_open))
        started[name] = Replica(name, config, tmp_path / f"{name}.log")
    try:
        for replica in started.values():
            await replica.start()
        for replica in started.values():
            await replica.wait_serving()
        yield started
    finally:
        for replica in started.values():
            with contextlib.suppress(ProcessLookupError):
                await replica.stop()


async def _until_ok(call, attempts: int = 300) -> Answer:
    answer = Answer(False)
    for _ in range(attempts):
        answer = await call()
        if answer.ok:
            return answer
        await asyncio.sleep(0.02)
    return answer


async def test_replicas_share_one_redis(replicas, redis_server, http, dev_token):
    a, b, fail_open = replicas["a"], replicas["b"], replicas["open"]

    # a token used on one replica is refused on the other, over either transport
    token = dev_token({"sub": "replay-check"})
    assert (await grpc_call(a, token)).ok
    assert (await grpc_call(b, token)).reason == "TOKEN_REPLAYED"
    assert (await http_call(b, http, token)).reason == "TOKEN_REPLAYED"

    # a burst of new sessions for one subject, spread over both: exactly the limit gets in
    async def new_session(i: int) -> Answer:
        replica = (a, b)[i % 2]
        token = dev_token({"sub": "household-7"})
        if i % 4 < 2:
            return await grpc_call(replica, token, content_id=f"title-{i}")
        return await http_call(replica, http, token, content_id=f"title-{i}")

    answers = await asyncio.gather(*(new_session(i) for i in range(24)))
    assert sum(answer.ok for answer in answers) == 3
    assert {a.reason for a in answers if not a.ok} == {"CONCURRENCY_LIMIT_EXCEEDED"}

    # Redis dies: the fail-closed replicas refuse, the fail-open one admits
    redis_server.kill()
    for replica in (a, b):
        down = await grpc_call(replica, dev_token({"sub": "during-outage"}), content_id="x")
        assert (down.reason, down.status) == ("STATE_UNAVAILABLE", grpc.StatusCode.UNAVAILABLE)
        over_http = await http_call(replica, http, dev_token({"sub": "during-outage"}))
        assert (over_http.reason, over_http.status) == ("STATE_UNAVAILABLE", 503)
    assert (await grpc_call(fail_open, dev_token({"sub": "during-outage"}))).ok

    # Redis comes back (empty): both replicas recover without a restart
    redis_server.start()
    for replica in (a, b):
        answer = await _until_ok(
            lambda r=replica: grpc_call(r, dev_token({"sub": "after-outage"}), content_id="y")
        )
        assert answer.ok, answer
    again = dev_token({"sub": "after-outage-2"})
    assert (await http_call(b, http, again)).ok
    assert (await http_call(a, http, again)).reason == "TOKEN_REPLAYED"
