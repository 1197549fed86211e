"""Concurrency per playback: what counts as one stream, block_new and stop_oldest, per-content
limits, releases and idle playbacks, through the proxy to the Widevine emulator (memory and
Redis, a fake clock)."""

from __future__ import annotations

import itertools
import uuid
from urllib.parse import quote

import grpc
import pytest

from plugins.access.playback import cmcd_session_id
from proxy.challenge import samples
from proxy.model import DrmSystem, LicenseRequest
from proxy.testing import proxy_config
from tests import vendor_matrix
from tests.session_support import (
    KID,
    VENDOR,
    new_license,
    release,
    renewal,
    sessions_config,
    widevine,
    widevine_http,
)

_prefixes = itertools.count()


@pytest.fixture(params=["memory", "redis", "redis-cluster"])
def state(request) -> dict:
    if request.param == "memory":
        return {"store": "memory", "key_prefix": f"play{next(_prefixes)}:"}
    # generous: a loaded 2-core CI machine must not turn a slow answer into STATE_UNAVAILABLE
    return {"store": request.getfixturevalue("store_target")(request.param).url, "timeout": "2s"}


@pytest.fixture
def token(dev_token, fake_clock):
    def make(sub: str = "alice", **claims) -> str:
        return dev_token({"sub": sub, "vendor": VENDOR, **claims}, ttl=3600, now=fake_clock.time())

    return make


def cmcd(sid: str) -> tuple[tuple[str, str], ...]:
    """gRPC metadata carrying a player's CMCD session header."""
    return (("cmcd-session", f'sid="{sid}",cid="movie-1"'),)


def concurrency(**settings) -> dict:
    return {"concurrency": {"limit": 3, "heartbeat_timeout": "5m", **settings}}


async def test_three_playbacks_are_allowed_and_a_fourth_is_blocked(
    state, vendor_sandbox, proxy_factory, fake_clock, token, http
):
    config = sessions_config(vendor_sandbox, state, grace=None, access=concurrency())
    proxy = await proxy_factory(config, clock=fake_clock)
    for n in (1, 2, 3):  # three screens playing the same title
        fake_clock.advance(10)
        answer = await widevine(proxy, token(), new_license(b"cdm-%d" % n), metadata=cmcd(f"p{n}"))
        assert answer.ok, answer
    headers = {"CMCD-Session": 'sid="p4"'}
    refused = await widevine_http(proxy, http, token(), new_license(b"cdm-4"), headers=headers)
    assert (refused.reason, refused.status) == ("CONCURRENCY_LIMIT_EXCEEDED", 429)
    assert refused.retry_after == "280"  # p1 lapses 5 minutes after its request
    assert refused.metadata == {"limit": "3"}
    # a playback already counted asks again (a retry, a quality switch): no second slot
    assert (await widevine(proxy, token(), new_license(b"cdm-5"), metadata=cmcd("p2"))).ok
    # renewals keep playbacks alive and never take a slot
    fake_clock.advance(200)
    for n in (2, 3):
        assert (await widevine(proxy, token(), renewal(b"cdm-%d" % n))).ok
    fake_clock.advance(91)  # p1 was last heard 301 s ago: idle, it lapsed
    assert (await widevine(proxy, token(), new_license(b"cdm-4"), metadata=cmcd("p4"))).ok
    again = await widevine(proxy, token(), new_license(b"cdm-6"), metadata=cmcd("p6"))
    assert (again.reason, again.status) == (
        "CONCURRENCY_LIMIT_EXCEEDED",
        grpc.StatusCode.RESOURCE_EXHAUSTED,
    )


async def test_stop_oldest_admits_the_fourth_and_stops_the_oldest_at_its_next_renewal(
    state, vendor_sandbox, proxy_factory, fake_clock, token
):
    rules = concurrency(mode="stop_oldest")
    proxy = await proxy_factory(
        sessions_config(vendor_sandbox, state, grace=None, access=rules), clock=fake_clock
    )
    for n in (1, 2, 3, 4):
        fake_clock.advance(10)
        answer = await widevine(proxy, token(), new_license(b"cdm-%d" % n), metadata=cmcd(f"p{n}"))
        assert answer.ok, answer
    # the renewal names only the license: the proxy knows it as p1's, and p1 was stopped
    stopped = await widevine(proxy, token(), renewal(b"cdm-1"))
    assert (stopped.reason, stopped.status) == (
        "CONCURRENCY_LIMIT_EXCEEDED",
        grpc.StatusCode.RESOURCE_EXHAUSTED,
    )
    assert "stopped" in stopped.detail
    for n in (2, 3, 4):
        fake_clock.advance(1)
        assert (await widevine(proxy, token(), renewal(b"cdm-%d" % n))).ok
    # p1 starting over is a new playback: it gets in, and stops the one heard from least
    # recently (p2, p3 and p4 renewed in that order)
    assert (await widevine(proxy, token(), new_license(b"cdm-7"), metadata=cmcd("p1"))).ok
    assert (await widevine(proxy, token(), renewal(b"cdm-2"))).reason == (
        "CONCURRENCY_LIMIT_EXCEEDED"
    )
    assert (await widevine(proxy, token(), renewal(b"cdm-7"))).ok


async def test_twenty_key_rotation_requests_of_one_playback_count_as_one(
    state, vendor_sandbox, proxy_factory, fake_clock, token
):
    proxy = await proxy_factory(
        sessions_config(vendor_sandbox, state, grace=None, access=concurrency(limit=1)),
        clock=fake_clock,
    )
    # one playback: a new CDM session and key per crypto period, one CMCD session id
    for period in range(20):
        key = uuid.UUID(int=period + 1).bytes
        challenge = new_license(b"rotation-%d" % period, key_ids=(key,))
        answer = await widevine(proxy, token(), challenge, metadata=cmcd("one-playback"))
        assert answer.ok, (period, answer)
        fake_clock.advance(3)
    # every session of it renews the one playback; a second playback is refused
    assert (await widevine(proxy, token(), renewal(b"rotation-0"))).ok
    other = await widevine(proxy, token(), new_license(b"cdm-x"), metadata=cmcd("another"))
    assert other.reason == "CONCURRENCY_LIMIT_EXCEEDED"
    # without CMCD the content groups them (quality switches: other keys, one title)
    proxy_b = await proxy_factory(
        sessions_config(
            vendor_sandbox,
            {**state, "key_prefix": f"b{next(_prefixes)}:"},
            grace=None,
            access=concurrency(limit=1),
        ),
        clock=fake_clock,
    )
    for n in range(20):
        key = uuid.UUID(int=100 + n).bytes
        assert (await widevine(proxy_b, token("bob"), new_license(b"q%d" % n, key_ids=(key,)))).ok
    refused = await widevine(proxy_b, token("bob"), new_license(b"r", content=b"other-title"))
    assert refused.reason == "CONCURRENCY_LIMIT_EXCEEDED"


async def test_a_release_frees_the_slot_at_once(
    state, vendor_sandbox, proxy_factory, fake_clock, token
):
    proxy = await proxy_factory(
        sessions_config(vendor_sandbox, state, grace=None, access=concurrency(limit=1)),
        clock=fake_clock,
    )
    assert (await widevine(proxy, token(), new_license(b"cdm-1"), metadata=cmcd("tv"))).ok
    blocked = await widevine(proxy, token(), new_license(b"cdm-2"), metadata=cmcd("phone"))
    assert blocked.reason == "CONCURRENCY_LIMIT_EXCEEDED"
    # the release names only the license; the proxy knows it is the tv's playback
    assert (await widevine(proxy, token(), release(b"cdm-1"))).ok
    assert (await widevine(proxy, token(), new_license(b"cdm-2"), metadata=cmcd("phone"))).ok


async def test_per_content_limits_sit_beside_the_subjects(
    state, vendor_sandbox, proxy_factory, fake_clock, token
):
    rules = concurrency(per_content=1)
    proxy = await proxy_factory(
        sessions_config(vendor_sandbox, state, grace=None, access=rules), clock=fake_clock
    )
    assert (await widevine(proxy, token(), new_license(b"a"), metadata=cmcd("tv"))).ok
    same = await widevine(proxy, token(), new_license(b"b"), metadata=cmcd("phone"))
    assert same.reason == "CONCURRENCY_LIMIT_EXCEEDED"
    assert same.metadata is not None
    assert (same.metadata["limit"], same.metadata["per_content"]) == ("3", "1")
    other = new_license(b"c", content=b"series-2")
    assert (await widevine(proxy, token(), other, metadata=cmcd("phone"))).ok
    # stop_oldest stops the playback of the same title, not the oldest one overall
    stop = await proxy_factory(
        sessions_config(
            vendor_sandbox,
            {**state, "key_prefix": f"s{next(_prefixes)}:"},
            grace=None,
            access=concurrency(per_content=1, mode="stop_oldest"),
        ),
        clock=fake_clock,
    )
    assert (await widevine(stop, token(), new_license(b"a"), metadata=cmcd("tv"))).ok
    fake_clock.advance(1)
    assert (await widevine(stop, token(), other, metadata=cmcd("laptop"))).ok
    fake_clock.advance(1)
    assert (await widevine(stop, token(), new_license(b"b"), metadata=cmcd("phone"))).ok
    assert (await widevine(stop, token(), renewal(b"a"))).reason == "CONCURRENCY_LIMIT_EXCEEDED"
    assert (await widevine(stop, token(), renewal(b"c"))).ok


async def test_the_device_and_the_claim_name_playbacks_before_cmcd(
    state, vendor_sandbox, proxy_factory, fake_clock, token, http
):
    rules = {**concurrency(limit=1), "device": {"header": "x-device-id", "claim": ""}}
    proxy = await proxy_factory(
        sessions_config(vendor_sandbox, state, grace=None, access=rules), clock=fake_clock
    )
    tv = {"X-Device-Id": "tv-1"}
    # one device: whatever CMCD session ids its player makes up, it is one stream
    for n, sid in enumerate(("a", "b", "c")):
        headers = {**tv, "CMCD-Session": f'sid="{sid}"'}
        assert (
            await widevine_http(proxy, http, token(), new_license(b"%d" % n), headers=headers)
        ).ok
    phone = {"X-Device-Id": "phone-1", "CMCD-Session": 'sid="a"'}
    refused = await widevine_http(proxy, http, token(), new_license(b"p"), headers=phone)
    assert refused.reason == "CONCURRENCY_LIMIT_EXCEEDED"


async def test_cmcd_in_the_query_and_unreadable_cmcd(
    state, vendor_sandbox, proxy_factory, fake_clock, token, http
):
    proxy = await proxy_factory(
        sessions_config(vendor_sandbox, state, grace=None, access=concurrency(limit=2)),
        clock=fake_clock,
    )
    query = {"CMCD": 'bl=2100,cid="movie-1",sid="q-1",su'}
    assert (await widevine_http(proxy, http, token(), new_license(b"1"), **query)).ok
    # unreadable CMCD is ignored (a license never fails over analytics): the content counts
    for bad in ('sid="' + "x" * 65 + '"', "sid=unquoted token,", "sid=12", "\u00e9"):
        headers = {"CMCD-Session": quote(bad) if not bad.isascii() else bad}
        assert (await widevine_http(proxy, http, token(), new_license(b"2"), headers=headers)).ok
    third = await widevine_http(
        proxy, http, token(), new_license(b"3", content=b"other"), **{"CMCD": 'sid="q-3"'}
    )
    assert third.reason == "CONCURRENCY_LIMIT_EXCEEDED"


@pytest.mark.parametrize(
    ("value", "sid"),
    [
        ('sid="6e2fb550-c457-11e9-bb97-0800200c9a66"', "6e2fb550-c457-11e9-bb97-0800200c9a66"),
        ('bl=21300,br=3200,bs,cid="faec5fc2",d=4004,sid="s",st=v', "s"),
        ("sid=token", None),
        ('sid="' + "x" * 64 + '"', "x" * 64),
        ('sid="' + "x" * 65 + '"', None),
        ('sid=""', None),
        ("sid=", None),
        ('sid="a";p=1', "a"),
        ("garbage ,,", None),
    ],
)
def test_the_cmcd_session_id_is_read_as_a_structured_field(value, sid):
    assert cmcd_session_id(LicenseRequest(b"", headers={"cmcd-session": value})) == sid
    assert cmcd_session_id(LicenseRequest(b"", query={"CMCD": value})) == sid


async def test_a_new_license_that_names_no_playback_is_refused(
    state, vendor_sandbox, proxy_factory, fake_clock, token
):
    proxy = await proxy_factory(
        sessions_config(vendor_sandbox, state, grace=None, access=concurrency()),
        clock=fake_clock,
    )
    nameless = samples.widevine_license_request(key_ids=[], request_id=b"cdm-1")
    refused = await widevine(proxy, token(), nameless)
    assert (refused.reason, refused.status) == (
        "REQUEST_INVALID",
        grpc.StatusCode.INVALID_ARGUMENT,
    )
    # a renewal of a session it never recorded keeps no playback alive, and is not refused
    assert (await widevine(proxy, token(), renewal(b"unknown"))).ok


@pytest.mark.parametrize("vendor", vendor_matrix.emulated(DrmSystem.WIDEVINE))
async def test_a_renewal_carries_its_sessions_keys_to_every_vendor(
    vendor, vendor_sandbox, proxy_factory, dev_token
):
    """With sessions tracked, a renewal reaches the vendor with the key ids and content id
    of the license it renews (it names neither itself)."""
    state = {"store": "memory", "key_prefix": f"v{next(_prefixes)}:"}
    config = sessions_config(vendor_sandbox, state, access=concurrency())
    proxy = await proxy_factory(config)
    alice = dev_token({"sub": "alice", "vendor": vendor})
    assert (await widevine(proxy, alice, new_license(b"cdm-1"))).ok
    renewed = await widevine(proxy, alice, renewal(b"cdm-1"))
    assert renewed.ok, renewed
    if vendor == "axinom":  # its entitlement message names the keys the session holds
        message = vendor_sandbox[vendor].state.last.decoded["message"]
        keys = message["content_keys_source"]["inline"]
        assert [uuid.UUID(k["id"]).bytes for k in keys] == [KID]


async def test_a_cors_preflight_allows_the_cmcd_headers_players_send(proxy_factory, http):
    """A player in CMCD header mode sends all four headers: a preflight that allowed only
    CMCD-Session would keep the browser from sending the license request at all."""
    config = proxy_config({"access": {"concurrency": {"limit": 2}}})
    proxy = await proxy_factory(config)
    headers = {
        "Origin": "https://player.example",
        "Access-Control-Request-Method": "POST",
        "Access-Control-Request-Headers": "authorization, cmcd-request, cmcd-session",
    }
    async with http.options(f"{proxy.http_url}/v1/licenses/widevine", headers=headers) as answer:
        assert answer.status == 204
        allowed = {
            h.strip().lower() for h in answer.headers["Access-Control-Allow-Headers"].split(",")
        }
    assert {"cmcd-object", "cmcd-request", "cmcd-session", "cmcd-status"} <= allowed
