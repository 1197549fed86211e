"""The client address: peers, trusted proxies, forwarding headers, and what is never believed."""

from __future__ import annotations

import ipaddress

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from multidict import CIMultiDict

from licenseproxy.v1 import license_proxy_pb2 as pb
from proxy import hookimpl
from proxy.clientaddr import (
    MAX_HOPS,
    forwarded_chain,
    grpc_peer_ip,
    normalize_ip,
    resolve_client,
    resolve_client_ip,
)
from proxy.config import ServerConfig
from proxy.testing import proxy_config
from tests.access_support import grpc_call, http_call

TRUSTED = ServerConfig(trusted_proxies=["10.0.0.0/8", "2001:db8:ffff::/48"])


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("203.0.113.9", "203.0.113.9"),
        ("203.0.113.9:4711", "203.0.113.9"),
        ("::ffff:203.0.113.9", "203.0.113.9"),
        ("[::ffff:203.0.113.9]:443", "203.0.113.9"),
        ("[2001:db8::1]:443", "2001:db8::1"),
        ("2001:DB8::0:1", "2001:db8::1"),
        ("fe80::1%eth0", "fe80::1"),
        (" 198.51.100.1 ", "198.51.100.1"),
        ("unknown", None),
        ("_hidden", None),
        ("", None),
        (None, None),
        ("999.1.1.1", None),
        ("01.2.3.4", None),
    ],
)
def test_normalize_ip(text, expected):
    assert normalize_ip(text) == expected


@pytest.mark.parametrize(
    ("peer", "expected"),
    [
        ("ipv4:127.0.0.1:5000", "127.0.0.1"),
        ("ipv6:[::1]:5000", "::1"),
        ("ipv6:%5B::ffff:127.0.0.1%5D:80", "127.0.0.1"),
        ("unix:/tmp/proxy.sock", None),
        ("", None),
    ],
)
def test_grpc_peer_ip(peer, expected):
    assert grpc_peer_ip(peer) == expected


def test_every_x_forwarded_for_line_is_read_in_order():
    # A proxy may add its own header line instead of extending the client's one:
    # the client's line comes first and the proxy's hop must still be the right-most.
    headers = CIMultiDict([("X-Forwarded-For", "6.6.6.6"), ("X-Forwarded-For", "203.0.113.9")])
    assert forwarded_chain(headers) == ["6.6.6.6", "203.0.113.9"]
    assert resolve_client_ip("10.0.0.1", headers, TRUSTED) == ("203.0.113.9", False)


def test_forwarded_elements_quotes_and_unknown_hops():
    header = (
        'for=192.0.2.43, For="[2001:db8:cafe::17]:4711";proto=https;by="a,b", '
        "for=unknown, proto=http, xfor=1.2.3.4;for=198.51.100.7"
    )
    assert forwarded_chain({"forwarded": header}, "forwarded") == [
        "192.0.2.43",
        "2001:db8:cafe::17",
        None,
        None,  # an element without for=
        "198.51.100.7",  # xfor= is not for=
    ]


RFC7239 = ServerConfig(trusted_proxies=["10.0.0.0/8"], forwarded_header="forwarded")


def test_an_unclosed_quote_never_swallows_the_line_a_proxy_appended():
    # The client's own line leaves a quote open; our proxy appends its hop as a new line.
    # Joined, the quote would swallow the proxy's element and the client's 10.0.0.9 win.
    headers = CIMultiDict([("Forwarded", 'for=10.0.0.9;x="'), ("Forwarded", "for=203.0.113.9")])
    assert forwarded_chain(headers, "forwarded") == [None, "203.0.113.9"]
    resolved = resolve_client("10.0.0.1", headers, RFC7239)
    assert (resolved.ip, resolved.origin_trusted) == ("203.0.113.9", False)


def test_a_forwarded_line_ending_inside_a_quote_is_one_unknown_hop():
    # Appended to the client's own line, the proxy's element can't be told apart: fail closed.
    line = 'for=10.0.0.9;x=", for=203.0.113.9'
    assert forwarded_chain({"forwarded": line}, "forwarded") == [None]
    resolved = resolve_client("10.0.0.1", {"forwarded": line}, RFC7239)
    assert (resolved.ip, resolved.origin_trusted) == (None, False)
    escaped_end = 'for="10.0.0.9\\"'  # the closing quote is escaped: still open
    assert forwarded_chain({"forwarded": escaped_end}, "forwarded") == [None]


@pytest.mark.parametrize(
    "element",
    [
        "for=10.0.0.9;for=203.0.113.9",  # for= twice in one element
        "for=10.0.0.9;junk",  # a pair without =
        "=10.0.0.9",
        'for="10.0.0.9',
    ],
)
def test_an_unreadable_forwarded_element_is_an_unknown_hop(element):
    assert forwarded_chain({"forwarded": element}, "forwarded") == [None]
    resolved = resolve_client("10.0.0.1", {"forwarded": element}, RFC7239)
    assert (resolved.ip, resolved.origin_trusted) == (None, False)


def test_long_chains_are_cut_and_marked_unknown():
    chain = ", ".join(f"10.0.0.{i}" for i in range(MAX_HOPS + 5))
    hops = forwarded_chain({"x-forwarded-for": chain})
    assert len(hops) == MAX_HOPS + 1 and hops[0] is None
    # all trusted, but what lies beyond the cut is unknown: no address, no trust
    assert resolve_client("10.0.0.1", {"x-forwarded-for": chain}, TRUSTED).ip is None


def test_a_header_from_an_untrusted_peer_is_ignored():
    headers = {"x-forwarded-for": "10.0.0.7", "forwarded": "for=10.0.0.7"}
    resolved = resolve_client("203.0.113.9", headers, TRUSTED)
    assert resolved.ip == "203.0.113.9"
    assert not resolved.peer_trusted and not resolved.origin_trusted


def test_right_most_untrusted_hop_behind_trusted_proxies():
    headers = {"x-forwarded-for": "6.6.6.6, 203.0.113.9, 10.1.1.1, 10.2.2.2"}
    resolved = resolve_client("10.0.0.1", headers, TRUSTED)
    assert resolved.ip == "203.0.113.9"
    assert resolved.peer_trusted and not resolved.origin_trusted


def test_an_unreadable_hop_is_an_unknown_client_not_the_proxy():
    resolved = resolve_client("10.0.0.1", {"x-forwarded-for": "203.0.113.9, garbage"}, TRUSTED)
    assert resolved.ip is None
    assert not resolved.origin_trusted


def test_trusted_all_the_way_is_a_trusted_origin():
    assert resolve_client("10.0.0.1", {}, TRUSTED).origin_trusted
    resolved = resolve_client("10.0.0.1", {"x-forwarded-for": "10.9.9.9, 10.1.1.1"}, TRUSTED)
    assert resolved.ip == "10.9.9.9" and resolved.origin_trusted


def test_only_the_configured_header_is_read():
    headers = {"x-forwarded-for": "198.51.100.1", "forwarded": "for=6.6.6.6"}
    assert resolve_client("10.0.0.1", headers, TRUSTED).ip == "198.51.100.1"
    rfc7239 = ServerConfig(trusted_proxies=["10.0.0.0/8"], forwarded_header="forwarded")
    assert resolve_client("10.0.0.1", headers, rfc7239).ip == "6.6.6.6"


def test_ipv4_mapped_trusted_networks_and_hops():
    mapped = ServerConfig(trusted_proxies=["::ffff:10.0.0.0/104"])
    headers = {"x-forwarded-for": "::ffff:203.0.113.9, ::ffff:10.3.3.3"}
    assert resolve_client("10.0.0.1", headers, mapped).ip == "203.0.113.9"
    v6 = resolve_client("2001:db8:ffff::1", {"x-forwarded-for": "2001:db8::5"}, TRUSTED)
    assert v6.ip == "2001:db8::5"


_untrusted_v4 = st.integers(
    min_value=int(ipaddress.IPv4Address("11.0.0.0")), max_value=2**32 - 1
).map(lambda n: str(ipaddress.IPv4Address(n)))
_trusted_v4 = st.integers(min_value=0, max_value=2**24 - 1).map(
    lambda n: str(ipaddress.IPv4Address(int(ipaddress.IPv4Address("10.0.0.0")) + n))
)
_junk = st.text(
    alphabet=st.characters(blacklist_categories=("Cs",), blacklist_characters="\r\n"), max_size=40
)


@settings(deadline=None, max_examples=300)
@given(
    spoofed=st.lists(st.one_of(_junk, _untrusted_v4, _trusted_v4), max_size=6),
    client=_untrusted_v4,
    proxies=st.lists(_trusted_v4, max_size=5),
)
def test_whatever_the_client_prepends_the_real_client_wins(spoofed, client, proxies):
    # The client controls everything left of the address our first trusted proxy appended.
    chain = ", ".join([*spoofed, client, *proxies])
    resolved = resolve_client("10.0.0.1", {"x-forwarded-for": chain}, TRUSTED)
    assert resolved.ip == client
    assert not resolved.origin_trusted


class SeesClient:
    """Records the client facts each request reached authorization with."""

    def __init__(self) -> None:
        self.clients = []

    @hookimpl
    def proxy_authorize(self, ctx, principal):
        self.clients.append(ctx.request.client)


async def test_spoofed_headers_and_client_fields_from_an_untrusted_peer(
    proxy_factory, http, dev_token
):
    seen = SeesClient()
    proxy = await proxy_factory(plugins=[seen])
    spoof = {"X-Forwarded-For": "203.0.113.9", "Forwarded": "for=203.0.113.9"}
    assert (await http_call(proxy, http, dev_token(), headers=spoof)).ok
    client = pb.ClientInfo(ip_address="203.0.113.9", device_id="dev-1", user_agent="x")
    answer = await grpc_call(
        proxy, dev_token(), client=client, metadata=(("x-forwarded-for", "203.0.113.9"),)
    )
    assert answer.ok
    for seen_client in seen.clients:
        assert seen_client.ip_address == "127.0.0.1"
        assert seen_client.device_id is None
        assert not seen_client.trusted


async def test_trusted_proxy_and_trusted_caller(proxy_factory, http, dev_token):
    seen = SeesClient()
    config = proxy_config({"server": {"trusted_proxies": ["127.0.0.0/8"]}})
    proxy = await proxy_factory(config, plugins=[seen])
    headers = {"X-Forwarded-For": "6.6.6.6, 203.0.113.9"}
    assert (await http_call(proxy, http, dev_token(), headers=headers)).ok
    # a trusted caller's own claims about its end user count...
    client = pb.ClientInfo(ip_address="::ffff:198.51.100.4", device_id="dev-1")
    assert (await grpc_call(proxy, dev_token(), client=client)).ok
    # ...unless it forwards for an outside client, who wrote the message
    forwarded = (("x-forwarded-for", "192.0.2.8"),)
    assert (await grpc_call(proxy, dev_token(), client=client, metadata=forwarded)).ok
    http_seen, grpc_trusted, grpc_forwarded = seen.clients
    assert (http_seen.ip_address, http_seen.trusted) == ("203.0.113.9", False)
    assert (grpc_trusted.ip_address, grpc_trusted.device_id) == ("198.51.100.4", "dev-1")
    assert grpc_trusted.trusted
    assert (grpc_forwarded.ip_address, grpc_forwarded.device_id) == ("192.0.2.8", None)


async def test_trusted_callers_client_ip_must_be_an_address(proxy_factory, dev_token):
    config = proxy_config({"server": {"trusted_proxies": ["127.0.0.1/32"]}})
    proxy = await proxy_factory(config)
    answer = await grpc_call(proxy, dev_token(), client=pb.ClientInfo(ip_address="nowhere"))
    assert answer.reason == "REQUEST_INVALID"
    long_device = pb.ClientInfo(device_id="d" * 600)
    assert (await grpc_call(proxy, dev_token(), client=long_device)).reason == "REQUEST_INVALID"


def test_forwarded_header_setting_is_validated():
    with pytest.raises(ValueError):
        ServerConfig(forwarded_header="x-real-ip")


def _canonical(value: int) -> str:
    ip = ipaddress.IPv6Address(value)
    return str(ip.ipv4_mapped) if ip.ipv4_mapped is not None else str(ip)


_v6_values = st.one_of(
    st.integers(0, 2**128 - 1),
    st.integers(0, 2**32 - 1),  # ::a.b.c.d
    st.integers(0, 2**32 - 1).map(lambda v: 0xFFFF << 32 | v),  # ::ffff:a.b.c.d
    st.integers(0, 2**16 - 1).map(lambda v: v << 64),
)


@settings(deadline=None, max_examples=500)
@given(value=_v6_values, v4=st.integers(0, 2**32 - 1))
def test_the_fast_path_writes_what_ipaddress_writes(value, v4):
    ip = ipaddress.IPv6Address(value)
    for text in (str(ip), ip.exploded, ip.exploded.upper(), f"[{ip}]:443"):
        assert normalize_ip(text) == _canonical(value)
    four = str(ipaddress.IPv4Address(v4))
    assert normalize_ip(four) == four
    assert normalize_ip(f"{four}:80") == four


async def test_the_json_route_believes_client_fields_only_from_a_trusted_origin(
    proxy_factory, http, dev_token
):
    from proxy.encoding import b64url_encode
    from tests.access_support import KID
    from tests.conftest import clearkey_request

    seen = SeesClient()
    config = proxy_config({"server": {"trusted_proxies": ["127.0.0.0/8"]}})
    proxy = await proxy_factory(config, plugins=[seen])
    body = {
        "challenge": b64url_encode(clearkey_request(KID)),
        "token": dev_token(),
        "client": {"ipAddress": "198.51.100.4", "deviceId": "dev-1"},
    }
    url = f"{proxy.http_url}/v1/license:acquire"
    async with http.post(url, json=body) as response:
        assert response.status == 200
    async with http.post(url, json=body, headers={"X-Forwarded-For": "192.0.2.8"}) as response:
        assert response.status == 200
    direct, forwarded = seen.clients
    assert (direct.ip_address, direct.device_id, direct.trusted) == ("198.51.100.4", "dev-1", True)
    assert (forwarded.ip_address, forwarded.device_id, forwarded.trusted) == (
        "192.0.2.8",
        None,
        False,
    )


async def test_an_unclosed_forwarded_quote_does_not_pass_the_ip_allow_list(
    proxy_factory, http, dev_token
):
    """The reviewer's exp12: a client line ``for=127.0.0.9;x="`` before the line the trusted
    proxy appended made the client a trusted origin, so its JSON ``client`` fields (an
    allowed address) were believed."""
    from proxy.encoding import b64url_encode
    from tests.access_support import KID
    from tests.conftest import clearkey_request

    config = proxy_config(
        {
            "server": {"trusted_proxies": ["127.0.0.0/8"], "forwarded_header": "forwarded"},
            "access": {"ip": {"allow": ["192.0.2.0/24"]}},
        }
    )
    proxy = await proxy_factory(config)
    token = dev_token({"sub": "a"})
    body = {
        "drmSystem": "DRM_SYSTEM_CLEARKEY",
        "challenge": b64url_encode(clearkey_request(KID)),
        "token": token,
        "client": {"ipAddress": "192.0.2.5", "deviceId": "any-device"},
    }
    crafted = CIMultiDict([("Forwarded", 'for=127.0.0.9;x="'), ("Forwarded", "for=203.0.113.9")])
    async with http.post(
        f"{proxy.http_url}/v1/license:acquire", json=body, headers=crafted
    ) as response:
        problem = await response.json(content_type=None)
        assert (response.status, problem["reason"]) == (403, "IP_NOT_ALLOWED")
    raw = CIMultiDict([*crafted.items(), ("Authorization", f"Bearer {token}")])
    async with http.post(
        f"{proxy.http_url}/v1/licenses/clearkey", data=clearkey_request(KID), headers=raw
    ) as response:
        problem = await response.json(content_type=None)
        assert (response.status, problem["reason"]) == (403, "IP_NOT_ALLOWED")


@pytest.mark.parametrize(
    ("networks", "address", "trusted"),
    [
        (["::ffff:10.0.0.0/104"], "10.1.2.3", True),
        (["::ffff:10.0.0.0/104"], "::ffff:10.1.2.3", True),
        (["10.0.0.0/8"], "::ffff:10.1.2.3", True),
        (["2001:db8::/32"], "2001:db8::7", True),
        (["::/0"], "10.1.2.3", False),  # every IPv6 client, not every client
        (["10.0.0.0/8"], "11.0.0.1", False),
        (["10.0.0.0/8"], "not an address", False),
        (["10.0.0.0/8"], None, False),
    ],
)
def test_request_id_trust_and_client_address_trust_agree(networks, address, trusted):
    server = ServerConfig(trusted_proxies=networks)
    assert server.is_trusted(address) is trusted
    assert resolve_client(address, {}, server).peer_trusted is trusted


def test_the_trusted_list_is_compiled_once_per_config():
    server = ServerConfig(trusted_proxies=[f"10.{i // 256}.{i % 256}.0/24" for i in range(1000)])
    compiled = server.trusted_set
    assert server.trusted_set is compiled and len(compiled) == 1000
    assert server.is_trusted("10.3.231.9") and not server.is_trusted("10.4.0.1")
