"""Replay, concurrency and rate limits through real proxies, on the memory store and on Redis."""

from __future__ import annotations

import asyncio
import itertools

import grpc
import pytest

from plugins.access.ratelimit import address_bucket
from plugins.access.replay import ReplayRule, ReplaySettings
from proxy.builder import build_pipeline
from proxy.errors import ConfigError, ProxyError
from proxy.model import Principal
from proxy.testing import proxy_config
from proxy.testing.redis import free_port
from tests.access_support import (
    TypedRequests,
    grpc_call,
    http_call,
    release_challenge,
    typed_challenge,
)

_prefixes = itertools.count()


@pytest.fixture(params=["memory", "redis", "redis-cluster", "redis-sentinel"])
def access(request):
    """Builds a config with ``[access]`` rules on the store this test runs with."""
    if request.param == "memory":
        state = {"store": "memory", "key_prefix": f"t{next(_prefixes)}:"}
    else:
        state = {"store": request.getfixturevalue("store_target")(request.param).url}

    def make(rules: dict, **extra) -> dict:
        return proxy_config({"access": {"state": state, **rules}, **extra})

    make.store = request.param
    return make


# -- replay ----------------------------------------------------------------------------


async def test_a_token_buys_one_license(access, proxy_factory, http, dev_token):
    proxy = await proxy_factory(access({"replay": {}}))
    token = dev_token()
    assert (await grpc_call(proxy, token)).ok
    over_http = await http_call(proxy, http, token)
    assert (over_http.reason, over_http.status) == ("TOKEN_REPLAYED", 403)
    over_grpc = await grpc_call(proxy, token)
    assert (over_grpc.reason, over_grpc.status) == (
        "TOKEN_REPLAYED",
        grpc.StatusCode.PERMISSION_DENIED,
    )
    assert (await grpc_call(proxy, dev_token())).ok  # another token is another story


async def test_n_uses_and_a_claim_that_lowers_them(access, proxy_factory, dev_token):
    claim = "urn:microsoft:azure:mediaservices:maxuses"
    proxy = await proxy_factory(access({"replay": {"max_uses": 3, "max_uses_claim": claim}}))
    token = dev_token()
    assert [(await grpc_call(proxy, token)).ok for _ in range(4)] == [True, True, True, False]
    lowered = dev_token({claim: 2})
    assert [(await grpc_call(proxy, lowered)).ok for _ in range(3)] == [True, True, False]
    raised = dev_token({claim: 50})  # a claim can't raise the configured ceiling
    assert [(await grpc_call(proxy, raised)).ok for _ in range(4)] == [True, True, True, False]
    answer = await grpc_call(proxy, dev_token({claim: "many"}))
    assert answer.reason == "TOKEN_MALFORMED"


async def test_without_jti_the_signed_part_names_the_token(access, proxy_factory, dev_token):
    proxy = await proxy_factory(access({"replay": {}}))
    first = dev_token({"jti": None}, now=1_700_000_000, ttl=10**9)
    twin = dev_token({"jti": None}, now=1_700_000_000, ttl=10**9)
    assert first == twin
    assert (await grpc_call(proxy, first)).ok
    assert (await grpc_call(proxy, twin)).reason == "TOKEN_REPLAYED"
    strict = await proxy_factory(access({"replay": {"require_id_claim": True}}))
    answer = await grpc_call(strict, dev_token({"jti": None}))
    assert (answer.reason, answer.status) == (
        "TOKEN_CLAIM_MISSING",
        grpc.StatusCode.UNAUTHENTICATED,
    )


def test_a_rewritten_signature_is_the_same_token():
    # ECDSA signatures are malleable: (r, s) and (r, n - s) both verify. The replay
    # key covers the signed part only, so a rewritten signature is no new token.
    rule = ReplayRule()
    settings = ReplaySettings()
    one = Principal("alice", "iss", {}, token="aGVhZA.Ym9keQ.c2lnMQ")
    two = Principal("alice", "iss", {}, token="aGVhZA.Ym9keQ.c2lnMg")
    assert rule._token_id(one, settings) == rule._token_id(two, settings)
    scoped = Principal("alice", "other-iss", {"jti": "1"})
    assert rule._token_id(scoped, settings) != rule._token_id(
        Principal("alice", "iss", {"jti": "1"}), settings
    )
    with pytest.raises(ProxyError) as raised:
        rule._token_id(Principal("alice", "iss", {"jti": "x" * 600}), settings)
    assert raised.value.reason.value == "TOKEN_MALFORMED"


async def test_only_new_license_requests_spend_a_use(access, proxy_factory, dev_token):
    proxy = await proxy_factory(access({"replay": {}}), plugins=[TypedRequests()])
    token = dev_token()
    for kind in ("service_certificate", "renewal", "service_certificate", "renewal"):
        assert (await grpc_call(proxy, token, challenge=typed_challenge(kind))).ok, kind
    assert (await grpc_call(proxy, token, challenge=release_challenge())).ok
    assert (await grpc_call(proxy, token)).ok
    assert (await grpc_call(proxy, token)).reason == "TOKEN_REPLAYED"


async def test_a_dry_run_spends_nothing(access, proxy_factory, dev_token):
    config = access({"replay": {}, "concurrency": {"limit": 1}})
    config["server"]["dry_run_claim"] = "may_dry_run"
    proxy = await proxy_factory(config)
    token = dev_token({"may_dry_run": True})
    for _ in range(3):
        assert (await grpc_call(proxy, token, dry_run=True, content_id="a")).ok
    assert (await grpc_call(proxy, token, content_id="a")).ok
    # a dry run tells what the real request would meet
    assert (await grpc_call(proxy, token, dry_run=True)).reason == "TOKEN_REPLAYED"
    other = await grpc_call(proxy, dev_token({"may_dry_run": True}), dry_run=True, content_id="b")
    assert other.reason == "CONCURRENCY_LIMIT_EXCEEDED"


async def test_a_request_that_fails_later_gives_its_use_and_slot_back(
    access, proxy_factory, dev_token
):
    policies = [{"name": "catalogue", "backends": ["clearkey"], "match": {"content_ids": ["ok/*"]}}]
    config = access({"replay": {}, "concurrency": {"limit": 1}}, policies=policies)
    proxy = await proxy_factory(config)
    token = dev_token()
    assert (await grpc_call(proxy, token, content_id="nope/1")).reason == "NO_MATCHING_POLICY"
    assert (await grpc_call(proxy, token, content_id="ok/1")).ok
    assert (await grpc_call(proxy, token, content_id="ok/1")).reason == "TOKEN_REPLAYED"


# -- concurrency -----------------------------------------------------------------------


async def test_sessions_per_subject(access, proxy_factory, http, dev_token, fake_clock):
    config = access({"concurrency": {"limit": 2, "interval": "60s", "grace": "30s"}})
    proxy = await proxy_factory(config, clock=fake_clock, plugins=[TypedRequests()])

    def token(**claims):
        return dev_token({"sub": "alice", **claims}, now=fake_clock.time())

    assert (await grpc_call(proxy, token(), content_id="s1")).ok
    assert (await http_call(proxy, http, token(), content_id="s2")).ok
    refused = await http_call(proxy, http, token(), content_id="s3")
    assert (refused.reason, refused.status) == ("CONCURRENCY_LIMIT_EXCEEDED", 429)
    assert refused.retry_after == "90"
    assert refused.metadata == {"limit": "2"}
    over_grpc = await grpc_call(proxy, token(), content_id="s3")
    assert over_grpc.status == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert over_grpc.retry_after == "90"
    # asking again for a live session takes no second slot
    assert (await grpc_call(proxy, token(), content_id="s1")).ok
    # another subject has its own slots
    assert (await grpc_call(proxy, dev_token({"sub": "bob"}, now=fake_clock.time()))).ok
    # a service-certificate request holds no session
    cert = typed_challenge("service_certificate", "s9")
    assert (await grpc_call(proxy, token(), challenge=cert)).ok
    # a release ends a session at once
    assert (await grpc_call(proxy, token(), challenge=release_challenge(), content_id="s1")).ok
    assert (await grpc_call(proxy, token(), content_id="s3")).ok
    assert (await grpc_call(proxy, token(), content_id="s4")).reason == (
        "CONCURRENCY_LIMIT_EXCEEDED"
    )


async def test_interval_grace_and_renewals(access, proxy_factory, dev_token, fake_clock):
    config = access({"concurrency": {"limit": 2, "interval": 60, "grace": 30}})
    proxy = await proxy_factory(config, clock=fake_clock, plugins=[TypedRequests()])

    async def ask(content_id: str, kind: str | None = None):
        token = dev_token({"sub": "carol"}, now=fake_clock.time())
        challenge = typed_challenge(kind, content_id) if kind else None
        return await grpc_call(proxy, token, content_id=content_id, challenge=challenge)

    assert (await ask("s1")).ok
    assert (await ask("s2")).ok
    fake_clock.advance(80)
    assert (await ask("s1", "renewal")).ok  # keeps s1 alive; takes no slot
    assert (await ask("s3")).reason == "CONCURRENCY_LIMIT_EXCEEDED"  # s2 still in its grace
    assert (await ask("s9", "renewal")).ok  # a renewal is never refused...
    fake_clock.advance(11)
    assert (await ask("s3")).ok  # ...and never took a slot: s2 lapsed at 90 s
    assert (await ask("s4")).reason == "CONCURRENCY_LIMIT_EXCEEDED"  # s1 lives until 170 s
    fake_clock.advance(80)
    assert (await ask("s4")).ok


async def test_session_and_subject_claims(access, proxy_factory, dev_token):
    config = access(
        {"concurrency": {"limit": 1, "subject_claim": "account", "session_claim": "sid"}}
    )
    proxy = await proxy_factory(config)
    alice = dev_token({"sub": "alice", "account": "family-1", "sid": "tv"})
    bob = dev_token({"sub": "bob", "account": "family-1", "sid": "phone"})
    assert (await grpc_call(proxy, alice, content_id="film-1")).ok
    assert (await grpc_call(proxy, alice, content_id="film-2")).ok  # same session id
    assert (await grpc_call(proxy, bob, content_id="film-1")).reason == (
        "CONCURRENCY_LIMIT_EXCEEDED"
    )
    answer = await grpc_call(proxy, dev_token({"sid": "x"}), content_id="film-1")
    assert answer.reason == "TOKEN_CLAIM_MISSING"


async def test_a_burst_of_new_sessions_admits_exactly_the_limit(
    access, proxy_factory, http, dev_token
):
    proxy = await proxy_factory(access({"concurrency": {"limit": 4}, "replay": {}}))

    async def one(i: int):
        token = dev_token({"sub": "dave"})
        if i % 2:
            return await grpc_call(proxy, token, content_id=f"title-{i}")
        return await http_call(proxy, http, token, content_id=f"title-{i}")

    answers = await asyncio.gather(*(one(i) for i in range(30)))
    assert sum(a.ok for a in answers) == 4
    assert {a.reason for a in answers if not a.ok} == {"CONCURRENCY_LIMIT_EXCEEDED"}


# -- rate limits -----------------------------------------------------------------------


async def test_rate_per_subject_with_retry_after(
    access, proxy_factory, http, dev_token, fake_clock
):
    config = access({"rate_limit": {"subject": {"requests": 2, "per": "1m"}}})
    proxy = await proxy_factory(config, clock=fake_clock)

    def token(sub: str = "erin") -> str:
        return dev_token({"sub": sub}, now=fake_clock.time())

    assert (await http_call(proxy, http, token())).ok
    assert (await grpc_call(proxy, token())).ok
    over_http = await http_call(proxy, http, token())
    assert (over_http.reason, over_http.status, over_http.retry_after) == (
        "RATE_LIMITED",
        429,
        "30",
    )
    over_grpc = await grpc_call(proxy, token())
    assert (over_grpc.status, over_grpc.retry_after) == (grpc.StatusCode.RESOURCE_EXHAUSTED, "30")
    assert (await grpc_call(proxy, token("frank"))).ok
    fake_clock.advance(30)
    assert (await grpc_call(proxy, token())).ok
    assert (await grpc_call(proxy, token())).reason == "RATE_LIMITED"


async def test_rate_per_client_address(access, proxy_factory, http, dev_token, fake_clock):
    config = access(
        {"rate_limit": {"client_ip": {"requests": 1, "per": 10, "burst": 3}}},
        server={"trusted_proxies": ["127.0.0.0/8"]},
    )
    proxy = await proxy_factory(config, clock=fake_clock)

    async def from_address(address: str):
        token = dev_token(now=fake_clock.time())
        return await http_call(proxy, http, token, headers={"X-Forwarded-For": address})

    for _ in range(3):
        assert (await from_address("203.0.113.1")).ok
    assert (await from_address("::ffff:203.0.113.1")).reason == "RATE_LIMITED"
    assert (await from_address("203.0.113.2")).ok
    for i in range(3):
        assert (await from_address(f"2001:db8:0:1::{i + 1}")).ok
    assert (await from_address("2001:db8:0:1::99")).reason == "RATE_LIMITED"  # same /64
    assert (await from_address("2001:db8:0:2::1")).ok


def test_ipv6_clients_are_counted_per_prefix():
    assert address_bucket("2001:db8:0:1::5", 64) == "2001:db8:0:1::/64"
    assert address_bucket("::ffff:198.51.100.1", 64) == "198.51.100.1"
    assert address_bucket("2001:db8::1", 128) == "2001:db8::1/128"
    assert address_bucket(None, 64) is None


# -- the store unreachable -----------------------------------------------------------------


def _dead_redis() -> str:
    return f"redis://127.0.0.1:{free_port()}/0"


async def test_an_unreachable_store_fails_closed(proxy_factory, http, dev_token):
    config = proxy_config({"access": {"state": {"store": _dead_redis()}, "replay": {}}})
    proxy = await proxy_factory(config)
    over_http = await http_call(proxy, http, dev_token())
    assert (over_http.reason, over_http.status) == ("STATE_UNAVAILABLE", 503)
    over_grpc = await grpc_call(proxy, dev_token())
    assert (over_grpc.reason, over_grpc.status) == (
        "STATE_UNAVAILABLE",
        grpc.StatusCode.UNAVAILABLE,
    )
    async with http.get(f"{proxy.admin_url}/metrics") as response:
        text = await response.text()
    assert 'license_proxy_state_unavailable_total{decision="deny"}' in text
    assert 'license_proxy_state_calls_total{outcome="error",store="redis"}' in text


async def test_fail_open_only_when_every_rule_says_so(proxy_factory, http, dev_token):
    rules = {
        "state": {"store": _dead_redis(), "timeout": "100ms"},
        "replay": {"fail_open": True},
        "rate_limit": {"subject": {"requests": 5}, "fail_open": True},
    }
    proxy = await proxy_factory(proxy_config({"access": rules}))
    assert (await http_call(proxy, http, dev_token())).ok
    mixed = await proxy_factory(proxy_config({"access": {**rules, "concurrency": {"limit": 1}}}))
    assert (await http_call(mixed, http, dev_token())).reason == "STATE_UNAVAILABLE"


async def test_redis_killed_and_restarted_under_a_running_proxy(
    redis_server, proxy_factory, dev_token
):
    config = proxy_config({"access": {"state": {"store": redis_server.url}, "replay": {}}})
    proxy = await proxy_factory(config)
    token = dev_token()
    assert (await grpc_call(proxy, token)).ok
    redis_server.kill()
    assert (await grpc_call(proxy, dev_token())).reason == "STATE_UNAVAILABLE"
    redis_server.start()
    for _ in range(200):
        if (await grpc_call(proxy, dev_token())).ok:
            break
        await asyncio.sleep(0.02)
    else:
        pytest.fail("the proxy never recovered after Redis came back")
    # Redis came back empty: what it forgot is gone, new uses are counted again
    fresh = dev_token()
    assert (await grpc_call(proxy, fresh)).ok
    assert (await grpc_call(proxy, fresh)).reason == "TOKEN_REPLAYED"


# -- configuration ---------------------------------------------------------------------


def test_state_rules_need_the_state_plugin():
    config = proxy_config(
        {
            "access": {"replay": {}, "concurrency": {"limit": 1}},
            "plugins": {"blocked": ["access_state"]},
        }
    )
    with pytest.raises(ConfigError) as raised:
        build_pipeline(config)
    errors = dict(raised.value.errors)
    assert "access_state" in errors["access.replay"]
    assert "access_state" in errors["access.concurrency"]


def test_config_errors_name_the_key(monkeypatch):
    monkeypatch.delenv("NO_SUCH_REDIS_URL", raising=False)
    config = proxy_config(
        {
            "access": {
                "state": {"store": "http://user:s3cret@cache:80", "timeout": 0},
                "replay": {"max_uses": 0, "max_use": 2},
                "concurrency": {"interval": "5 minutes"},
                "rate_limit": {"subject": {"requests": 10, "per": 0}, "client_ip": {"per": 1}},
                "surprise": {},
            }
        }
    )
    with pytest.raises(ConfigError) as raised:
        build_pipeline(config)
    errors = dict(raised.value.errors)
    assert "s3cret" not in str(raised.value)
    assert "redis://" in errors["access.state.store"]
    assert "access.state.timeout" in errors
    assert "access.replay.max_uses" in errors
    assert errors["access.replay.max_use"] == "unknown key (did you mean 'max_uses'?)"
    assert errors["access.concurrency.limit"] == "missing required key"
    assert "access.concurrency.interval" in errors
    assert "access.rate_limit.subject" in errors
    assert errors["access.rate_limit.client_ip.requests"] == "missing required key"
    assert "access.surprise" in errors
    env = proxy_config({"access": {"state": {"store": "env:NO_SUCH_REDIS_URL"}}})
    with pytest.raises(ConfigError) as raised:
        build_pipeline(env)
    assert "NO_SUCH_REDIS_URL" in dict(raised.value.errors)["access.state.store"]


def test_the_store_url_may_come_from_the_environment(monkeypatch):
    monkeypatch.setenv("TEST_REDIS_URL", "redis://:pw@127.0.0.1:6399/3")
    pipeline = build_pipeline(
        proxy_config({"access": {"state": {"store": "env:TEST_REDIS_URL"}, "replay": {}}})
    )
    assert pipeline.services.state.describe() == "redis://127.0.0.1:6399/3"


async def test_one_redis_round_trip_per_request_for_every_state_rule(
    redis_server, proxy_factory, dev_token
):
    import redis.asyncio as aioredis

    rules = {
        "state": {"store": redis_server.url},
        "replay": {},
        "concurrency": {"limit": 100},
        "rate_limit": {"subject": {"requests": 100}, "client_ip": {"requests": 100}},
    }
    proxy = await proxy_factory(proxy_config({"access": rules}))
    assert (await grpc_call(proxy, dev_token(), content_id="warm-up")).ok  # loads the script
    admin = aioredis.Redis.from_url(redis_server.url)
    try:
        await admin.config_resetstat()
        for i in range(10):
            assert (await grpc_call(proxy, dev_token(), content_id=f"title-{i}")).ok
        stats = await admin.info("commandstats")
    finally:
        await admin.aclose()
    top_level = {
        name: stat["calls"]
        for name, stat in stats.items()
        if name.startswith(("cmdstat_evalsha", "cmdstat_eval", "cmdstat_script", "cmdstat_multi"))
    }
    assert top_level == {"cmdstat_evalsha": 10}


async def test_a_config_reload_keeps_the_memory_store(dev_token):
    from proxy.server import ProxyApp
    from proxy.testing import RunningProxy

    config = proxy_config({"access": {"replay": {}, "state": {"key_prefix": "reload-test:"}}})
    app = ProxyApp(build_pipeline(config), rebuild=lambda: build_pipeline(config))
    await app.start()
    proxy = RunningProxy(app)
    try:
        token = dev_token()
        assert (await grpc_call(proxy, token)).ok
        old = app.pipeline
        assert await app.reload()
        assert app.pipeline is not old
        assert app.pipeline.services.state is old.services.state
        assert (await grpc_call(proxy, token)).reason == "TOKEN_REPLAYED"
    finally:
        await proxy.stop()
