"""Idempotent retries (``access.replay.retry_window``): a player sending the same license request
again is the same use, never TOKEN_REPLAYED, and counts once against rates and concurrency."""

from __future__ import annotations

import asyncio
import itertools
from typing import Any

import aiohttp
import pytest

from proxy.errors import ConfigError
from proxy.testing import proxy_config, start_proxy
from tests.session_support import VENDOR, new_license, sessions_config, widevine, widevine_http

_prefixes = itertools.count()


@pytest.fixture(params=["memory", "redis", "redis-cluster"])
def state(request) -> dict:
    if request.param == "memory":
        return {"store": "memory", "key_prefix": f"retry{next(_prefixes)}:"}
    # generous: a loaded 2-core CI machine must not turn a slow answer into STATE_UNAVAILABLE
    return {"store": request.getfixturevalue("store_target")(request.param).url, "timeout": "2s"}


@pytest.fixture
def token(dev_token, fake_clock):
    def make(sub: str = "alice", **claims: Any) -> str:
        return dev_token({"sub": sub, "vendor": VENDOR, **claims}, ttl=3600, now=fake_clock.time())

    return make


def rules(window: str | None = "30s", **extra: Any) -> dict:
    replay: dict[str, Any] = {"max_uses": 1}
    if window is not None:
        replay["retry_window"] = window
    return {"replay": replay, **extra}


async def test_the_same_challenge_and_token_within_the_window_is_the_same_use(
    state, vendor_sandbox, proxy_factory, fake_clock, token, http
):
    config = sessions_config(vendor_sandbox, state, grace=None, access=rules())
    proxy = await proxy_factory(config, clock=fake_clock)
    alice = token()
    challenge = new_license(b"cdm-1")
    assert (await widevine(proxy, alice, challenge)).ok
    fake_clock.advance(5)
    # the player's retry: the very same bytes with the same token, over either transport
    assert (await widevine_http(proxy, http, alice, challenge)).ok
    assert (await widevine(proxy, alice, challenge)).ok
    received = vendor_sandbox[VENDOR].state.received
    assert len(received) == 3  # each retry got a fresh license from the vendor
    # another challenge is another use: refused
    other = await widevine(proxy, alice, new_license(b"cdm-2"))
    assert other.reason == "TOKEN_REPLAYED"
    # past the window the same challenge is a replay too
    fake_clock.advance(26)
    assert (await widevine(proxy, alice, challenge)).reason == "TOKEN_REPLAYED"


async def test_without_a_window_a_retry_is_a_replay(
    state, vendor_sandbox, proxy_factory, fake_clock, token
):
    config = sessions_config(vendor_sandbox, state, grace=None, access=rules(window=None))
    proxy = await proxy_factory(config, clock=fake_clock)
    alice = token()
    assert (await widevine(proxy, alice, new_license(b"cdm-1"))).ok
    assert (await widevine(proxy, alice, new_license(b"cdm-1"))).reason == "TOKEN_REPLAYED"


async def test_a_retry_counts_once_against_rates_and_concurrency(
    state, vendor_sandbox, proxy_factory, fake_clock, token
):
    access = rules(
        rate_limit={"subject": {"requests": 1, "per": "1m"}},
        concurrency={"limit": 1},
    )
    config = sessions_config(vendor_sandbox, state, grace=None, access=access)
    proxy = await proxy_factory(config, clock=fake_clock)
    alice = token()
    challenge = new_license(b"cdm-1")
    assert (await widevine(proxy, alice, challenge)).ok
    for _ in range(3):  # a retrying player is neither rate limited nor a second stream
        assert (await widevine(proxy, alice, challenge)).ok
    # the bucket counted the first request only: one more from alice is over the rate
    fresh = await widevine(proxy, token(), new_license(b"cdm-2", content=b"movie-2"))
    assert fresh.reason == "RATE_LIMITED"
    fake_clock.advance(61)
    # and the concurrency rule counted one playback: a second title is over the limit
    second = await widevine(proxy, token(), new_license(b"cdm-3", content=b"movie-2"))
    assert second.reason == "CONCURRENCY_LIMIT_EXCEEDED"


async def test_a_retry_after_a_dropped_answer_succeeds_with_one_use(
    state, vendor_sandbox, proxy_factory, fake_clock, token
):
    """A real aiohttp client sends the license request and drops the connection before the
    answer comes (a player's timeout); its retry gets a license, on every store. The
    browser version (shaka-player and dash.js in Chromium): tests/players/test_player_sessions.py."""
    config = sessions_config(vendor_sandbox, state, grace=None, access=rules())
    proxy = await proxy_factory(config, clock=fake_clock)
    alice = token()
    challenge = new_license(b"cdm-1")
    url = f"{proxy.http_url}/v1/licenses/widevine"
    headers = {"Authorization": f"Bearer {alice}"}
    emulator = vendor_sandbox[VENDOR]
    emulator.fault.set("slow", delay=1.0, times=1)  # the first answer is slow in coming
    async with aiohttp.ClientSession() as dropping:

        async def first() -> None:
            async with dropping.post(url, data=challenge, headers=headers) as response:
                await response.read()

        task = asyncio.create_task(first())
        for _ in range(500):  # the vendor took the slow turn: the proxy spent the use
            if emulator.fault.times == 0:
                break
            await asyncio.sleep(0.01)
        assert emulator.fault.times == 0, "the first request never reached the vendor"
        task.cancel()  # the player gives up: the connection closes, the answer is lost
        with pytest.raises(asyncio.CancelledError):
            await task
    async with (
        aiohttp.ClientSession() as player,
        player.post(url, data=challenge, headers=headers) as response,
    ):
        assert response.status == 200, await response.text()
        assert await response.read()
    pipeline = proxy.app.pipeline
    for _ in range(500):  # the dropped request finishes on the proxy's side too
        if pipeline.in_flight == 0:
            break
        await asyncio.sleep(0.01)
    # the dropped request's license was issued: the one use is spent for anything else
    assert (await widevine(proxy, alice, new_license(b"cdm-2"))).reason == "TOKEN_REPLAYED"


@pytest.mark.parametrize(("window", "message"), [("6m", "between 0 and 300"), (-1, "negative")])
async def test_the_retry_window_is_bounded_at_start(window, message):
    config = proxy_config({"access": {"replay": {"retry_window": window}}})
    with pytest.raises(ConfigError) as raised:
        await start_proxy(config)
    assert message in dict(raised.value.errors)["access.replay.retry_window"]
