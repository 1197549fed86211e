"""``access_ip``: allow and deny lists, globally, per policy and per token, on real listeners."""

from __future__ import annotations

import grpc
import pytest

from licenseproxy.v1 import license_proxy_pb2 as pb
from proxy.errors import ConfigError
from proxy.testing import proxy_config
from tests.access_support import grpc_call, http_call

TRUSTED = {"trusted_proxies": ["127.0.0.0/8"]}


def ip_config(access: dict, server: dict | None = None, **extra) -> dict:
    return proxy_config({"access": {"ip": access}, "server": server or {}, **extra})


async def both(proxy, http, token, **kwargs):
    """The same request over gRPC and HTTP; both must decide alike."""
    headers = kwargs.pop("headers", None)
    metadata = tuple((k.lower(), v) for k, v in (headers or {}).items())
    over_grpc = await grpc_call(proxy, token, metadata=metadata, **kwargs)
    over_http = await http_call(proxy, http, token, headers=headers)
    assert over_grpc.reason == over_http.reason
    return over_grpc, over_http


async def test_allow_list_admits_and_refuses(proxy_factory, http, dev_token):
    admitted = await proxy_factory(ip_config({"allow": ["127.0.0.0/8"]}))
    over_grpc, over_http = await both(admitted, http, dev_token())
    assert over_grpc.ok and over_http.ok
    refused = await proxy_factory(ip_config({"allow": ["10.0.0.0/8", "2001:db8::/32"]}))
    over_grpc, over_http = await both(refused, http, dev_token())
    assert over_grpc.reason == "IP_NOT_ALLOWED"
    assert over_grpc.status == grpc.StatusCode.PERMISSION_DENIED
    assert over_http.status == 403
    assert "allow list" in over_http.detail


async def test_deny_wins_over_allow(proxy_factory, http, dev_token):
    proxy = await proxy_factory(ip_config({"allow": ["127.0.0.0/8"], "deny": ["127.0.0.1"]}))
    over_grpc, _ = await both(proxy, http, dev_token())
    assert over_grpc.reason == "IP_NOT_ALLOWED"


async def test_x_forwarded_for_from_an_untrusted_peer_is_ignored(proxy_factory, http, dev_token):
    spoof = {"X-Forwarded-For": "203.0.113.5"}
    untrusted = await proxy_factory(ip_config({"allow": ["203.0.113.0/24"]}))
    over_grpc, _ = await both(untrusted, http, dev_token(), headers=spoof)
    assert over_grpc.reason == "IP_NOT_ALLOWED"  # the peer 127.0.0.1 is what counts
    denied_peer = await proxy_factory(ip_config({"deny": ["127.0.0.1"]}))
    over_grpc, _ = await both(denied_peer, http, dev_token(), headers=spoof)
    assert over_grpc.reason == "IP_NOT_ALLOWED"  # a header can't move a denied peer elsewhere
    trusted = await proxy_factory(ip_config({"allow": ["203.0.113.0/24"]}, TRUSTED))
    over_grpc, over_http = await both(trusted, http, dev_token(), headers=spoof)
    assert over_grpc.ok and over_http.ok


@pytest.mark.parametrize(
    ("rule", "forwarded", "allowed"),
    [
        ({"allow": ["203.0.113.0/24"]}, "::ffff:203.0.113.5", True),
        ({"allow": ["::ffff:203.0.113.0/120"]}, "203.0.113.5", True),
        ({"allow": ["::ffff:203.0.113.0/120"]}, "::ffff:203.0.113.5", True),
        ({"deny": ["::ffff:203.0.113.5"]}, "203.0.113.5", False),
        ({"deny": ["203.0.113.5"]}, "[::ffff:203.0.113.5]:4711", False),
        ({"allow": ["2001:db8::/32"]}, "2001:db8:0:1::7", True),
        ({"allow": ["2001:db8::/32"]}, "2001:db9::7", False),
        ({"deny": ["2001:db8::/32"]}, "2001:DB8::7", False),
        ({"allow": ["::/0"]}, "203.0.113.5", False),
    ],
)
async def test_ipv6_and_ipv4_mapped_forms_match_the_same_rule(
    rule, forwarded, allowed, proxy_factory, http, dev_token
):
    proxy = await proxy_factory(ip_config(rule, TRUSTED))
    over_grpc, over_http = await both(
        proxy, http, dev_token(), headers={"X-Forwarded-For": forwarded}
    )
    assert over_grpc.ok is over_http.ok is allowed
    if not allowed:
        assert over_http.reason == "IP_NOT_ALLOWED"


async def test_rfc7239_forwarded_when_configured(proxy_factory, http, dev_token):
    server = {**TRUSTED, "forwarded_header": "forwarded"}
    proxy = await proxy_factory(ip_config({"allow": ["2001:db8::/32"]}, server))
    good = {"Forwarded": 'for="[2001:db8::9]:4711";proto=https', "X-Forwarded-For": "6.6.6.6"}
    assert (await http_call(proxy, http, dev_token(), headers=good)).ok
    # X-Forwarded-For is not read when the proxies write Forwarded
    bad = {"X-Forwarded-For": "2001:db8::9", "Forwarded": "for=198.51.100.1"}
    assert (await http_call(proxy, http, dev_token(), headers=bad)).reason == "IP_NOT_ALLOWED"


async def test_an_unknown_client_address_is_refused(proxy_factory, http, dev_token):
    proxy = await proxy_factory(ip_config({"deny": ["198.51.100.0/24"]}, TRUSTED))
    answer = await http_call(proxy, http, dev_token(), headers={"X-Forwarded-For": "unknown"})
    assert answer.reason == "IP_NOT_ALLOWED"
    assert "unknown" in answer.detail


async def test_a_trusted_callers_client_ip_counts_and_an_untrusted_ones_does_not(
    proxy_factory, dev_token
):
    rule = {"allow": ["198.51.100.0/24"]}
    client = pb.ClientInfo(ip_address="198.51.100.4")
    trusted = await proxy_factory(ip_config(rule, TRUSTED))
    assert (await grpc_call(trusted, dev_token(), client=client)).ok
    untrusted = await proxy_factory(ip_config(rule))
    assert (await grpc_call(untrusted, dev_token(), client=client)).reason == "IP_NOT_ALLOWED"


@pytest.mark.parametrize(
    ("lists", "claim", "allowed"),
    [
        ({}, ["127.0.0.1", "2001:db8::1"], True),
        ({}, "127.0.0.0/8", True),
        ({}, ["10.0.0.1"], False),
        ({}, [], False),
        ({}, ["not an address"], False),
        ({}, [1, 2], False),
        ({"allow": ["10.0.0.0/8"]}, ["127.0.0.1"], False),  # a claim never widens the lists
        ({"deny": ["127.0.0.1"]}, ["127.0.0.1"], False),
        ({"allow": ["127.0.0.0/8"]}, ["127.0.0.1"], True),
    ],
)
async def test_the_token_claim_only_narrows(lists, claim, allowed, proxy_factory, http, dev_token):
    proxy = await proxy_factory(ip_config(lists))
    token = dev_token({"allowed_ip_addresses": claim})
    over_grpc, over_http = await both(proxy, http, token)
    assert over_grpc.ok is over_http.ok is allowed
    if not allowed:
        assert over_grpc.reason == "IP_NOT_ALLOWED"


async def test_the_claim_name_is_configurable_and_can_be_ignored(proxy_factory, http, dev_token):
    renamed = await proxy_factory(ip_config({"claim": "ips"}))
    assert (await http_call(renamed, http, dev_token({"ips": ["10.0.0.1"]}))).reason == (
        "IP_NOT_ALLOWED"
    )
    assert (await http_call(renamed, http, dev_token({"allowed_ip_addresses": ["10.0.0.1"]}))).ok
    ignored = await proxy_factory(ip_config({"claim": ""}))
    assert (await http_call(ignored, http, dev_token({"allowed_ip_addresses": ["10.0.0.1"]}))).ok


async def test_the_claim_is_honoured_without_any_access_section(proxy_factory, http, dev_token):
    proxy = await proxy_factory()
    answer = await http_call(proxy, http, dev_token({"allowed_ip_addresses": ["10.0.0.1"]}))
    assert answer.reason == "IP_NOT_ALLOWED"


def _policies(access: dict) -> list[dict]:
    return [
        {
            "name": "guarded",
            "backends": ["clearkey"],
            "priority": 10,
            "match": {"content_ids": ["guarded/*"]},
            "access": access,
        },
        {"name": "default", "backends": ["clearkey"]},
    ]


async def test_policy_lists_apply_after_election(proxy_factory, http, dev_token):
    proxy = await proxy_factory(proxy_config({"policies": _policies({"ip_deny": ["127.0.0.1"]})}))
    refused = await grpc_call(proxy, dev_token(), content_id="guarded/1")
    assert refused.reason == "IP_NOT_ALLOWED"
    assert refused.metadata["policy"] == "guarded"
    assert (await grpc_call(proxy, dev_token(), content_id="open/1")).ok
    allow_elsewhere = _policies({"ip_allow": ["10.0.0.0/8", "2001:db8::/32"]})
    proxy = await proxy_factory(proxy_config({"policies": allow_elsewhere}))
    answer = await http_call(proxy, http, dev_token(), content_id="guarded/1")
    assert answer.reason == "IP_NOT_ALLOWED"
    allow_here = _policies({"ip_allow": ["127.0.0.0/8"]})
    proxy = await proxy_factory(proxy_config({"policies": allow_here}))
    assert (await http_call(proxy, http, dev_token(), content_id="guarded/1")).ok


async def test_a_policy_refusal_gives_the_token_use_back(proxy_factory, dev_token):
    config = proxy_config(
        {"policies": _policies({"ip_deny": ["127.0.0.1"]}), "access": {"replay": {}}}
    )
    proxy = await proxy_factory(config)
    token = dev_token()
    assert (await grpc_call(proxy, token, content_id="guarded/1")).reason == "IP_NOT_ALLOWED"
    # the use spent at authorization was given back: the token still buys its one license
    assert (await grpc_call(proxy, token, content_id="open/1")).ok
    assert (await grpc_call(proxy, token, content_id="open/1")).reason == "TOKEN_REPLAYED"


async def test_list_files(tmp_path, proxy_factory, http, dev_token):
    networks = "\n".join(f"10.{i // 256}.{i % 256}.0/24" for i in range(5000))
    (tmp_path / "without.txt").write_text(f"# generated\n{networks}\n")
    (tmp_path / "with.txt").write_text(f"{networks}\n127.0.0.1  # this host\n")
    proxy = await proxy_factory(ip_config({"allow_file": "with.txt"}), base_dir=tmp_path)
    assert (await http_call(proxy, http, dev_token())).ok
    proxy = await proxy_factory(ip_config({"allow_file": "without.txt"}), base_dir=tmp_path)
    assert (await http_call(proxy, http, dev_token())).reason == "IP_NOT_ALLOWED"


def test_config_errors_name_the_key(tmp_path):
    from proxy.builder import build_pipeline

    config = ip_config({"allow": ["10.0.0.1/8", "192.0.2.0/24"], "deny": ["::1/129"], "typo": 1})
    with pytest.raises(ConfigError) as raised:
        build_pipeline(config, base_dir=tmp_path)
    errors = dict(raised.value.errors)
    assert "host bits" in errors["access.ip.allow[0]"]
    assert "access.ip.deny[0]" in errors
    assert errors["access.ip.typo"] == "unknown key"
    (tmp_path / "bad.txt").write_text("10.0.0.0/8\nnope\n")
    config = ip_config({"deny_file": "bad.txt", "allow_file": "missing.txt"})
    with pytest.raises(ConfigError) as raised:
        build_pipeline(config, base_dir=tmp_path)
    errors = dict(raised.value.errors)
    assert "line 2" in errors["access.ip.deny_file"]
    assert "cannot read" in errors["access.ip.allow_file"]
