"""Renewals and releases after the access token expired (an issuer's ``renewal_grace``).

Widevine sessions built with the project's challenge builders go through the proxy to the
Widevine cloud emulator, on the memory store and on a real Redis; a fake clock moves time.
"""

from __future__ import annotations

import itertools

import grpc
import pytest

from proxy.errors import ConfigError
from proxy.testing import proxy_config, start_proxy
from tests.session_support import (
    VENDOR,
    new_license,
    release,
    renewal,
    sessions_config,
    widevine,
    widevine_http,
)
from tests.test_admin import ADMIN_ISSUER, ADMIN_SECRET, admin_token, call
from tests.token_support import flip_signature_bit

_prefixes = itertools.count()
#: The development issuer's leeway: a token is expired this long after its exp.
LEEWAY = 30
#: A short-lived token, as apps hand players (Verimatrix documents 90 s).
TTL = 90


@pytest.fixture(params=["memory", "redis"])
def state(request) -> dict:
    if request.param == "memory":
        return {"store": "memory", "key_prefix": f"grace{next(_prefixes)}:"}
    # generous: a loaded 2-core CI machine must not turn a slow answer into STATE_UNAVAILABLE
    return {"store": request.getfixturevalue("redis_server").url, "timeout": "2s"}


@pytest.fixture
def token(dev_token, fake_clock):
    def make(sub: str = "alice", ttl: int = TTL, **claims) -> str:
        return dev_token({"sub": sub, "vendor": VENDOR, **claims}, ttl=ttl, now=fake_clock.time())

    return make


async def test_a_renewal_ten_minutes_after_expiry_is_accepted_within_the_grace(
    state, vendor_sandbox, proxy_factory, fake_clock, token, http
):
    proxy = await proxy_factory(sessions_config(vendor_sandbox, state), clock=fake_clock)
    started = token()
    assert (await widevine(proxy, started, new_license(b"cdm-1"))).ok
    fake_clock.advance(TTL + LEEWAY + 600)  # 10 minutes after the token expired
    assert (await widevine(proxy, started, renewal(b"cdm-1"))).ok
    assert (await widevine_http(proxy, http, started, renewal(b"cdm-1"))).ok
    # the same expired token can't buy a new license, nor renew a session it never began
    expired = await widevine(proxy, started, new_license(b"cdm-2"))
    assert (expired.reason, expired.status) == ("TOKEN_EXPIRED", grpc.StatusCode.UNAUTHENTICATED)
    unknown = await widevine_http(proxy, http, started, renewal(b"never-licensed"))
    assert (unknown.reason, unknown.status) == ("TOKEN_EXPIRED", 401)
    assert "no license session this proxy issued" in unknown.detail
    # a release within the grace is accepted too
    assert (await widevine(proxy, started, release(b"cdm-1"))).ok
    # past the grace (15 minutes after expiry plus leeway), the renewal is refused
    fake_clock.advance(300)
    assert (await widevine(proxy, started, new_license(b"cdm-3"))).reason == "TOKEN_EXPIRED"
    late = token()
    assert (await widevine(proxy, late, new_license(b"cdm-4"))).ok
    fake_clock.advance(TTL + LEEWAY + 15 * 60 + 1)
    refused = await widevine(proxy, late, renewal(b"cdm-4"))
    assert refused.reason == "TOKEN_EXPIRED" and "grace is over" in refused.detail


async def test_the_session_is_bound_to_the_tokens_subject_and_time(
    state, vendor_sandbox, proxy_factory, fake_clock, token
):
    proxy = await proxy_factory(sessions_config(vendor_sandbox, state), clock=fake_clock)
    older = token(ttl=60)
    fake_clock.advance(LEEWAY + 61)  # that token expired before the session begins
    alice = token()
    assert (await widevine(proxy, alice, new_license(b"cdm-1"))).ok
    bob = token("bob")
    fake_clock.advance(TTL + LEEWAY + 60)
    # bob's expired token can't renew alice's session, though it names her license
    assert (await widevine(proxy, bob, renewal(b"cdm-1"))).reason == "TOKEN_EXPIRED"
    # a token of alice's that expired before her session began is no good either
    stale = await widevine(proxy, older, renewal(b"cdm-1"))
    assert stale.reason == "TOKEN_EXPIRED" and "not valid when the session began" in stale.detail
    # a fresh token of alice's renews without the grace, and her old one still with it
    assert (await widevine(proxy, token(), renewal(b"cdm-1"))).ok
    assert (await widevine(proxy, alice, renewal(b"cdm-1"))).ok


async def test_an_expired_token_must_still_verify_for_the_grace(
    state, vendor_sandbox, proxy_factory, fake_clock, token, dev_token
):
    proxy = await proxy_factory(sessions_config(vendor_sandbox, state), clock=fake_clock)
    alice = token()
    assert (await widevine(proxy, alice, new_license(b"cdm-1"))).ok
    foreign = dev_token(
        {"sub": "alice", "vendor": VENDOR, "aud": "someone-else"}, ttl=TTL, now=fake_clock.time()
    )
    fake_clock.advance(TTL + LEEWAY + 60)
    # the wrong audience: expired tokens are TOKEN_EXPIRED whatever else is wrong, and stay so
    assert (await widevine(proxy, foreign, renewal(b"cdm-1"))).reason == "TOKEN_EXPIRED"
    # a bad signature is refused first, as for any token
    forged = await widevine(proxy, flip_signature_bit(alice), renewal(b"cdm-1"))
    assert forged.reason == "TOKEN_SIGNATURE_INVALID"
    assert (await widevine(proxy, alice, renewal(b"cdm-1"))).ok


async def test_entitlement_and_revocation_are_judged_again_at_renewal(
    state, vendor_sandbox, proxy_factory, fake_clock, token, http
):
    rules = {
        "entitlement": {
            "rules": [{"content_ids": ["movie-*"], "claim": "groups", "any_of": ["premium"]}]
        }
    }
    admin = {
        "token": {"issuer": ADMIN_ISSUER, "secret": f"hex:{ADMIN_SECRET}"},
        "port": 0,
    }
    config = sessions_config(vendor_sandbox, state, access=rules, admin=admin)
    proxy = await proxy_factory(config, clock=fake_clock)
    premium = token(groups=["premium"])
    assert (await widevine(proxy, premium, new_license(b"cdm-1"))).ok
    # a renewal names no content: the session's (movie-1) is judged again, with the new token
    lapsed = await widevine(proxy, token(groups=["basic"]), renewal(b"cdm-1"))
    assert lapsed.reason == "NOT_ENTITLED"
    fake_clock.advance(TTL + LEEWAY + 60)
    assert (await widevine(proxy, premium, renewal(b"cdm-1"))).ok
    # a revoked subject stops at its next renewal, within the grace or not
    body = {"subject": "alice", "for": "1h"}
    operator = admin_token("ops")  # the admin API checks its tokens by the wall clock
    assert (await call(http, proxy, "POST", "/revocations", operator, json=body))[0] == 200
    revoked = await widevine(proxy, premium, renewal(b"cdm-1"))
    assert (revoked.reason, revoked.status) == ("TOKEN_REVOKED", grpc.StatusCode.UNAUTHENTICATED)
    assert (await widevine(proxy, token(groups=["premium"]), renewal(b"cdm-1"))).reason == (
        "TOKEN_REVOKED"
    )


async def test_a_license_that_was_not_issued_leaves_no_session(
    state, vendor_sandbox, proxy_factory, fake_clock, token
):
    proxy = await proxy_factory(sessions_config(vendor_sandbox, state), clock=fake_clock)
    alice = token()
    vendor_sandbox[VENDOR].fault.set("error", status=500, times=3)
    assert not (await widevine(proxy, alice, new_license(b"cdm-1"))).ok
    vendor_sandbox[VENDOR].fault.clear()
    fake_clock.advance(TTL + LEEWAY + 60)
    assert (await widevine(proxy, alice, renewal(b"cdm-1"))).reason == "TOKEN_EXPIRED"


async def test_without_a_grace_an_expired_renewal_is_refused_as_before(
    state, vendor_sandbox, proxy_factory, fake_clock, token
):
    config = sessions_config(vendor_sandbox, state, grace=None)
    proxy = await proxy_factory(config, clock=fake_clock)
    alice = token()
    assert (await widevine(proxy, alice, new_license(b"cdm-1"))).ok
    assert (await widevine(proxy, alice, renewal(b"cdm-1"))).ok  # a valid token renews
    fake_clock.advance(TTL + LEEWAY + 1)
    assert (await widevine(proxy, alice, renewal(b"cdm-1"))).reason == "TOKEN_EXPIRED"
    assert not proxy.app.pipeline.services.sessions.enabled  # nothing recorded, nothing read


async def test_the_state_store_down_answers_state_unavailable(
    vendor_sandbox, proxy_factory, fake_clock, token, redis_server
):
    state = {"store": redis_server.url, "timeout": "200ms"}
    proxy = await proxy_factory(sessions_config(vendor_sandbox, state), clock=fake_clock)
    alice = token()
    assert (await widevine(proxy, alice, new_license(b"cdm-1"))).ok
    fake_clock.advance(TTL + LEEWAY + 60)
    redis_server.kill()
    down = await widevine(proxy, alice, renewal(b"cdm-1"))
    assert (down.reason, down.status) == ("STATE_UNAVAILABLE", grpc.StatusCode.UNAVAILABLE)
    assert down.retry_after == "1"
    redis_server.start()  # empty: what it remembered is gone
    assert (await widevine(proxy, alice, renewal(b"cdm-1"))).reason == "TOKEN_EXPIRED"


@pytest.mark.parametrize(
    ("grace", "message"),
    [("25h", "between 0 and 86400"), (-1, "not negative"), ("soon", "not a duration")],
)
async def test_renewal_grace_is_bounded_at_start(grace, message):
    config = proxy_config()
    config["auth"]["issuers"][0]["renewal_grace"] = grace
    with pytest.raises(ConfigError) as raised:
        await start_proxy(config)
    errors = dict(raised.value.errors)
    assert message in errors["auth.issuers[0].renewal_grace"]


async def test_renewal_grace_needs_the_plugin_that_records_sessions():
    config = proxy_config({"plugins": {"blocked": ["access_state"]}})
    config["auth"]["issuers"][0]["renewal_grace"] = "10m"
    with pytest.raises(ConfigError) as raised:
        await start_proxy(config)
    assert "access_state" in dict(raised.value.errors)["auth.issuers[0].renewal_grace"]
