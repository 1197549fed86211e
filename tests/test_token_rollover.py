"""Key rollover against a real JWKS / OpenID Connect server on loopback.

The proxy must keep issuing licenses through key rotations and identity-provider outages:
keys load in the background, an unknown ``kid`` fetches (at most once per interval), a
failing endpoint leaves the last good keys serving, and a removed key stops verifying after
the next refresh. Time is a FakeClock; waits are bounded polls, never timed assertions.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
from collections.abc import AsyncIterator
from typing import Any

import pytest
import pytest_asyncio
from prometheus_client import REGISTRY

from plugins.token import jwks
from plugins.token import keys as key_module
from plugins.token.jwks import cache_lifetime
from proxy.testing import FakeClock, proxy_config
from tests.token_support import (
    ISSUER,
    KeyServer,
    acquire,
    build_token_plugin,
    claims,
    ec_key,
    eventually,
    issuer,
    public_jwk,
    reason,
    rsa_key,
    sign,
)


@pytest.fixture(autouse=True)
def fast_schedule(monkeypatch):
    """The refresh loop looks at the (fake) clock every 10 ms instead of every second."""
    monkeypatch.setattr(jwks, "POLL_SECONDS", 0.01)


@pytest_asyncio.fixture
async def key_server() -> AsyncIterator[KeyServer]:
    server = await KeyServer(keys=[public_jwk(rsa_key("k1"), "k1")]).start()
    try:
        yield server
    finally:
        await server.stop()


def remote_issuer(server: KeyServer, *, discovery: bool = False, **refresh: Any) -> dict:
    source = (
        {"openid_configuration": server.discovery_url}
        if discovery
        else {"jwks_uri": server.jwks_uri}
    )
    return issuer(refresh={"timeout": "2s", **refresh}, **source)


def auth_config(server: KeyServer, **kwargs: Any) -> dict:
    return proxy_config({"auth": {"issuers": [remote_issuer(server, **kwargs)]}})


def token(clock: FakeClock, name: str, kid: str | None = None, **extra: Any) -> str:
    return sign(
        claims(clock.time(), jti=secrets.token_hex(6), **extra), rsa_key(name), kid=kid or name
    )


def fetches(outcome: str, trigger: str) -> float:
    value = REGISTRY.get_sample_value(
        "license_proxy_token_key_fetches_total",
        {"issuer": ISSUER, "trigger": trigger, "outcome": outcome},
    )
    return value or 0.0


async def test_listeners_start_before_the_first_fetch_and_early_requests_wait_for_it(
    proxy_factory, http, key_server, fake_clock
):
    key_server.stall = asyncio.Event()
    proxy = await proxy_factory(auth_config(key_server), clock=fake_clock)
    # The proxy is serving while the key server still holds the first fetch.
    await eventually(lambda: key_server.jwks_requests == 1, "the first fetch began")
    async with http.get(f"{proxy.http_url}/readyz") as ready:
        assert ready.status == 200
    early = [asyncio.create_task(acquire(proxy, http, token(fake_clock, "k1"))) for _ in range(20)]
    await asyncio.sleep(0.05)
    assert not any(task.done() for task in early)
    key_server.stall.set()
    assert await asyncio.gather(*early) == ["OK"] * 20
    assert key_server.jwks_requests == 1  # twenty waiting requests shared that one fetch


async def test_rotating_the_signing_key_mid_flow_fails_no_request(
    proxy_factory, http, key_server, fake_clock
):
    proxy = await proxy_factory(auth_config(key_server), clock=fake_clock)
    signer = {"name": "k1"}
    results: list[str] = []
    stop = asyncio.Event()

    async def player() -> None:
        for _ in range(2000):
            if stop.is_set():
                return
            results.append(await acquire(proxy, http, token(fake_clock, signer["name"])))

    players = [asyncio.create_task(player()) for _ in range(4)]
    await eventually(lambda: len(results) >= 20, "requests signed by k1 went through")
    # The STS publishes k2 and signs with it at once: the unknown kid fetches the new set.
    key_server.keys = [public_jwk(rsa_key("k1"), "k1"), public_jwk(rsa_key("k2"), "k2")]
    signer["name"] = "k2"
    mark = len(results)
    await eventually(lambda: len(results) >= mark + 40, "requests signed by k2 went through")
    # A minute later (past the 30 s unknown-kid interval): k3 arrives the same way, k1 retires.
    fake_clock.advance(60)
    key_server.keys = [public_jwk(rsa_key("k2"), "k2"), public_jwk(rsa_key("k3"), "k3")]
    signer["name"] = "k3"
    mark = len(results)
    await eventually(lambda: len(results) >= mark + 40, "requests signed by k3 went through")
    stop.set()
    await asyncio.gather(*players)
    assert results and set(results) == {"OK"}, {r for r in results if r != "OK"}
    assert key_server.jwks_requests == 3  # the first fetch, then one per new kid


async def test_a_removed_key_stops_verifying_after_the_next_refresh(
    proxy_factory, http, key_server, fake_clock
):
    key_server.keys.append(public_jwk(rsa_key("k2"), "k2"))
    key_server.cache_control = "public, max-age=600"
    proxy = await proxy_factory(auth_config(key_server, min_interval="60s"), clock=fake_clock)
    old = token(fake_clock, "k1")
    assert await acquire(proxy, http, old) == "OK"  # verified, and cached
    key_server.keys = [public_jwk(rsa_key("k2"), "k2")]
    assert await acquire(proxy, http, old) == "OK"  # the set in use still holds k1
    before = key_server.jwks_requests
    fake_clock.advance(601)
    await eventually(lambda: key_server.jwks_requests > before, "the scheduled refresh ran")
    await eventually(lambda: fetches("ok", "schedule") >= 1, "the refresh was installed")
    assert await acquire(proxy, http, old) == "TOKEN_KEY_UNKNOWN"
    assert await acquire(proxy, http, token(fake_clock, "k1")) == "TOKEN_KEY_UNKNOWN"
    assert await acquire(proxy, http, token(fake_clock, "k2")) == "OK"


@pytest.mark.parametrize("outage", ["down", "http_500", "stalled"])
async def test_known_keys_keep_verifying_while_the_endpoint_fails(
    proxy_factory, http, key_server, fake_clock, caplog, outage
):
    caplog.set_level(logging.WARNING, "plugins.token.jwks")
    proxy = await proxy_factory(
        auth_config(key_server, timeout="0.2s", interval="1h", min_interval="1m"), clock=fake_clock
    )
    assert await acquire(proxy, http, token(fake_clock, "k1")) == "OK"
    outcome = {"down": "unreachable", "http_500": "bad_status", "stalled": "timeout"}[outage]
    failures = fetches(outcome, "schedule")
    if outage == "down":
        await key_server.stop()
    elif outage == "http_500":
        key_server.fail_with = 500
    else:
        key_server.stall = asyncio.Event()
    fake_clock.advance(3601)
    await eventually(lambda: fetches(outcome, "schedule") > failures, "the failed fetch counted")
    assert "the last good keys stay in use" in caplog.text
    for _ in range(5):
        assert await acquire(proxy, http, token(fake_clock, "k1")) == "OK"
    # A key the outage kept from us is unknown, and the failure is counted again.
    assert await acquire(proxy, http, token(fake_clock, "k9")) == "TOKEN_KEY_UNKNOWN"
    assert fetches(outcome, "unknown_kid") >= 1
    if key_server.stall is not None:
        key_server.stall.set()


async def test_a_flood_of_random_kids_fetches_at_most_once_per_interval(
    proxy_factory, http, key_server, fake_clock
):
    proxy = await proxy_factory(
        auth_config(key_server, unknown_kid_interval="30s"), clock=fake_clock
    )
    assert await acquire(proxy, http, token(fake_clock, "k1")) == "OK"
    start = key_server.jwks_requests

    async def flood() -> list[str]:
        forged = [token(fake_clock, "k1", kid=secrets.token_hex(8)) for _ in range(150)]
        return await asyncio.gather(*(acquire(proxy, http, t) for t in forged))

    assert set(await flood()) == {"TOKEN_KEY_UNKNOWN"}
    assert key_server.jwks_requests == start + 1
    fake_clock.advance(29)
    assert set(await flood()) == {"TOKEN_KEY_UNKNOWN"}
    assert key_server.jwks_requests == start + 1
    fake_clock.advance(2)
    assert set(await flood()) == {"TOKEN_KEY_UNKNOWN"}
    assert key_server.jwks_requests == start + 2
    # Known keys were never disturbed.
    assert await acquire(proxy, http, token(fake_clock, "k1")) == "OK"


async def test_openid_discovery_finds_the_key_set(proxy_factory, http, key_server, fake_clock):
    proxy = await proxy_factory(auth_config(key_server, discovery=True), clock=fake_clock)
    assert await acquire(proxy, http, token(fake_clock, "k1")) == "OK"
    assert key_server.discovery_requests >= 1


async def test_a_discovery_document_naming_another_issuer_is_not_trusted(
    proxy_factory, http, key_server, fake_clock
):
    key_server.issuer = "https://impostor.example.test/"
    proxy = await proxy_factory(auth_config(key_server, discovery=True), clock=fake_clock)
    # No key set was ever loaded, so the token can't be judged: retryable, not a bad token.
    assert await acquire(proxy, http, token(fake_clock, "k1")) == "KEY_SOURCE_UNAVAILABLE"
    assert key_server.jwks_requests == 0
    assert fetches("issuer_mismatch", "start") >= 1


async def test_a_key_set_with_no_usable_key_leaves_the_last_good_one(
    http, key_server, fake_clock, proxy_factory
):
    proxy = await proxy_factory(auth_config(key_server), clock=fake_clock)
    assert await acquire(proxy, http, token(fake_clock, "k1")) == "OK"
    key_server.keys = [
        {"kty": "oct", "k": "c2VjcmV0LXNlY3JldC1zZWNyZXQtc2VjcmV0LXNlY3JldA", "kid": "k9"},
        public_jwk(rsa_key("enc"), "enc-1", use="enc"),
        {"kty": "RSA", "kid": "broken", "n": "AQAB", "e": "AQAB"},
    ]
    fake_clock.advance(3601)
    await eventually(lambda: fetches("bad_document", "schedule") >= 1, "the empty set refused")
    assert await acquire(proxy, http, token(fake_clock, "k1")) == "OK"


async def test_keys_of_other_families_and_broken_keys_in_a_set_are_skipped(key_server, fake_clock):
    auth = {"issuers": [remote_issuer(key_server)]}
    p384 = public_jwk(ec_key("p384", "P-384"), "ec")
    wrong_curve = dict(p384, crv="P-256")  # P-384 coordinates claiming to be P-256
    key_server.keys = [
        public_jwk(rsa_key("k1"), "k1"),
        wrong_curve,
        public_jwk(rsa_key("enc"), "enc-1", use="enc"),
    ]
    plugin, pipeline = build_token_plugin(auth, clock=fake_clock)
    async with pipeline.running():
        assert await reason(plugin, token(fake_clock, "k1")) == "OK"
        keys = plugin.verifier.issuers[ISSUER].keys
        assert [k.id for k in keys.keys] == ["k1"]


async def test_the_refresh_schedule_follows_cache_control_within_bounds(key_server, fake_clock):
    auth = {"issuers": [remote_issuer(key_server, min_interval="5m", max_interval="2h")]}
    plugin, pipeline = build_token_plugin(auth, clock=fake_clock)
    source = plugin.remote[0]
    async with pipeline.running():
        for header, expected in [
            ("max-age=1800", 1800),
            ("public, max-age=60", 300),
            ("max-age=86400, must-revalidate", 7200),
            ("no-store", 300),
            (None, 3600),
        ]:
            key_server.cache_control = header
            assert await source.refresh()
            assert source.next_refresh_in() == expected, header


def test_cache_lifetime_reads_max_age_less_age():
    headers = {"Cache-Control": "private, max-age=3600", "Age": "600"}
    assert cache_lifetime(headers, 900, 60, 86400) == 3000
    assert cache_lifetime({"Cache-Control": "no-cache"}, 900, 60, 86400) == 60
    assert cache_lifetime({}, 900, 60, 86400) == 900
    assert cache_lifetime({"Cache-Control": "s-maxage=5"}, 900, 60, 86400) == 900


async def test_stopping_the_proxy_ends_a_fetch_under_way(key_server, fake_clock):
    key_server.stall = asyncio.Event()
    auth = {"issuers": [remote_issuer(key_server)]}
    plugin, pipeline = build_token_plugin(auth, clock=fake_clock)
    async with pipeline.running():
        waiting = asyncio.create_task(reason(plugin, token(fake_clock, "k1")))
        await eventually(lambda: key_server.jwks_requests == 1, "the first fetch began")
    assert await waiting == "KEY_SOURCE_UNAVAILABLE"  # the first fetch never ended
    key_server.stall.set()


async def test_keys_are_parsed_once_not_per_request_nor_per_refresh(
    key_server, fake_clock, monkeypatch
):
    parsed: list[str] = []
    real = key_module.jwk_material

    def counting(jwk):
        parsed.append(jwk.get("kid"))
        return real(jwk)

    monkeypatch.setattr(key_module, "jwk_material", counting)
    plugin, pipeline = build_token_plugin(
        {"issuers": [remote_issuer(key_server)]}, clock=fake_clock
    )
    async with pipeline.running():
        for _ in range(20):
            assert await reason(plugin, token(fake_clock, "k1")) == "OK"
        first = plugin.verifier.issuers[ISSUER].keys.keys
        assert await plugin.remote[0].refresh()
        assert plugin.verifier.issuers[ISSUER].keys.keys == first
    assert parsed == ["k1"]


async def test_a_reload_while_the_identity_provider_is_down_keeps_the_keys(
    http, key_server, fake_clock
):
    """SIGHUP used to build a pipeline with an empty key set: with the IdP down, every token
    was then TOKEN_KEY_UNKNOWN until it came back."""
    from proxy.builder import build_pipeline
    from proxy.server import ProxyApp
    from proxy.services import Services
    from proxy.testing import RunningProxy

    config = auth_config(key_server)

    def build():
        return build_pipeline(config, services=Services(clock=fake_clock))

    app = ProxyApp(build(), rebuild=build, access_log=False)
    await app.start()
    proxy = RunningProxy(app)
    registry_key = (ISSUER, key_server.jwks_uri)
    try:
        assert await acquire(proxy, http, token(fake_clock, "k1")) == "OK"
        await key_server.stop()  # the identity provider goes down
        assert await app.reload()
        assert await app.reload()  # and again: the carried-over keys carry over
        requests_before = key_server.jwks_requests
        assert await acquire(proxy, http, token(fake_clock, "k1")) == "OK"
        assert key_server.jwks_requests == requests_before
        # a key the last good set never held is still unknown
        assert await acquire(proxy, http, token(fake_clock, "k2")) == "TOKEN_KEY_UNKNOWN"
        assert jwks.LastGoodKeys.get(registry_key) is not None
    finally:
        await proxy.stop()
    # nothing serves that key set any more: the process forgets it
    assert jwks.LastGoodKeys.get(registry_key) is None


async def test_carried_over_keys_are_parsed_again_for_other_algorithms(key_server, fake_clock):
    plugin, pipeline = build_token_plugin(
        {"issuers": [remote_issuer(key_server)]}, clock=fake_clock
    )
    async with pipeline.running():
        await eventually(lambda: plugin.remote[0].successes == 1, "the first fetch")
        assert await reason(plugin, token(fake_clock, "k1")) == "OK"
        # the next configuration accepts PS256 only: the RS256 key must not verify RS256
        narrowed, _ = build_token_plugin(
            {"issuers": [issuer(jwks_uri=key_server.jwks_uri, algorithms=["PS256"])]},
            clock=fake_clock,
        )
        assert await reason(narrowed, token(fake_clock, "k1")) == "TOKEN_ALGORITHM_REJECTED"
        signed_ps256 = sign(claims(fake_clock.time()), rsa_key("k1"), alg="PS256", kid="k1")
        assert await reason(narrowed, signed_ps256) == "OK"


async def test_published_keys_without_kid_are_not_tried_one_by_one(
    key_server, fake_clock, monkeypatch
):
    """Published keys without ``kid`` used to serve every token with an unknown kid (or
    none), so a forged token cost a signature check per published key."""
    published = [ec_key(f"idless-{i}") for i in range(5)]
    key_server.keys = [public_jwk(k) for k in published]
    auth = {"issuers": [issuer(jwks_uri=key_server.jwks_uri, algorithms=["ES256"])]}
    plugin, pipeline = build_token_plugin(auth, clock=fake_clock)
    checks = []
    verify = key_module.VerificationKey.verify

    def counting(self, alg, signing_input, signature):
        checks.append(self.label)
        return verify(self, alg, signing_input, signature)

    monkeypatch.setattr(key_module.VerificationKey, "verify", counting)
    async with pipeline.running():
        await eventually(lambda: plugin.remote[0].successes == 1, "the first fetch")
        body = claims(fake_clock.time())
        for kid in ("made-up", None):
            forged = sign(body, published[-1], alg="ES256", kid=kid)
            assert await reason(plugin, forged) == "TOKEN_KEY_UNKNOWN"
        assert checks == []

        # one published key for the algorithm: it serves, whatever the token's kid
        key_server.keys = [public_jwk(published[0])]
        assert await plugin.remote[0].refresh()
        for kid in ("made-up", None):
            assert await reason(plugin, sign(body, published[0], alg="ES256", kid=kid)) == "OK"
        assert len(checks) == 2
