"""``access_entitlement``: claims tied to the content asked for."""

from __future__ import annotations

import uuid

import grpc
import pytest

from proxy.builder import build_pipeline
from proxy.errors import ConfigError
from proxy.testing import proxy_config
from tests.access_support import KID, KID2, grpc_call, http_call
from tests.conftest import clearkey_request


def rules_config(*rules: dict) -> dict:
    return proxy_config({"access": {"entitlement": {"rules": list(rules)}}})


PREMIUM = {
    "name": "premium catalogue",
    "content_ids": ["premium/*"],
    "claim": "groups",
    "any_of": ["premium", "staff"],
}


async def test_group_required_for_matching_content(proxy_factory, http, dev_token):
    proxy = await proxy_factory(rules_config(PREMIUM))
    member = dev_token({"groups": ["basic", "premium"]})
    outsider = dev_token({"groups": ["basic"]})
    assert (await grpc_call(proxy, member, content_id="premium/film")).ok
    refused = await grpc_call(proxy, outsider, content_id="premium/film")
    assert refused.reason == "NOT_ENTITLED"
    assert refused.status == grpc.StatusCode.PERMISSION_DENIED
    assert refused.detail.startswith("premium catalogue:")
    over_http = await http_call(proxy, http, outsider, content_id="premium/film")
    assert (over_http.reason, over_http.status) == ("NOT_ENTITLED", 403)
    assert (await grpc_call(proxy, outsider, content_id="free/clip")).ok
    assert (await grpc_call(proxy, dev_token({"groups": "staff"}), content_id="premium/x")).ok
    # without a content id the request might be for premium content: the rule applies
    assert (await grpc_call(proxy, outsider)).reason == "NOT_ENTITLED"
    assert (await grpc_call(proxy, dev_token(), content_id="premium/x")).reason == "NOT_ENTITLED"


async def test_claim_must_equal_the_content_id(proxy_factory, http, dev_token):
    proxy = await proxy_factory(rules_config({"claim": "content_id", "equals_content_id": True}))
    token = dev_token({"content_id": "movie-42"})
    assert (await http_call(proxy, http, token, content_id="movie-42")).ok
    assert (await http_call(proxy, http, token, content_id="movie-43")).reason == "NOT_ENTITLED"
    assert (await http_call(proxy, http, token)).reason == "NOT_ENTITLED"
    several = dev_token({"content_id": ["movie-1", "movie-43"]})
    assert (await http_call(proxy, http, several, content_id="movie-43")).ok


async def test_subject_names_the_content_verimatrix_style(proxy_factory, dev_token):
    proxy = await proxy_factory(rules_config({"claim": "sub", "equals_content_id": True}))
    assert (await grpc_call(proxy, dev_token({"sub": "asset-7"}), content_id="asset-7")).ok
    answer = await grpc_call(proxy, dev_token({"sub": "asset-7"}), content_id="asset-8")
    assert answer.reason == "NOT_ENTITLED"


async def test_claim_must_cover_every_key_id(proxy_factory, dev_token):
    claim = "urn:microsoft:azure:mediaservices:contentkeyidentifier"
    proxy = await proxy_factory(rules_config({"claim": claim, "covers_key_ids": True}))
    one = dev_token({claim: str(uuid.UUID(bytes=KID)).upper()})
    assert (await grpc_call(proxy, one)).ok
    both = clearkey_request(KID, KID2)
    assert (await grpc_call(proxy, one, challenge=both)).reason == "NOT_ENTITLED"
    two = dev_token({claim: [str(uuid.UUID(bytes=k)) for k in (KID, KID2)]})
    assert (await grpc_call(proxy, two, challenge=both)).ok
    assert (await grpc_call(proxy, dev_token({claim: "not-a-uuid"}))).reason == "NOT_ENTITLED"


async def test_all_of_and_value_types(proxy_factory, dev_token):
    proxy = await proxy_factory(
        rules_config(
            {"claim": "features", "all_of": ["hd", "offline"]},
            {"claim": "tier", "any_of": [2, 3], "drm_systems": ["clearkey"]},
        )
    )
    good = dev_token({"features": ["offline", "hd", "4k"], "tier": 3})
    assert (await grpc_call(proxy, good)).ok
    partial = dev_token({"features": ["hd"], "tier": 3})
    assert (await grpc_call(proxy, partial)).reason == "NOT_ENTITLED"
    wrong_type = dev_token({"features": ["hd", "offline"], "tier": "3"})
    assert (await grpc_call(proxy, wrong_type)).reason == "NOT_ENTITLED"
    boolean = dev_token({"features": ["hd", "offline"], "tier": True})
    assert (await grpc_call(proxy, boolean)).reason == "NOT_ENTITLED"


async def test_rules_scoped_to_other_drm_systems_do_not_apply(proxy_factory, dev_token):
    proxy = await proxy_factory(
        rules_config({"claim": "widevine_ok", "any_of": [True], "drm_systems": ["widevine"]})
    )
    assert (await grpc_call(proxy, dev_token())).ok


def test_config_errors_name_the_key():
    config = rules_config(
        {"claim": "groups"},
        {"claim": "groups", "any_of": []},
        {"any_of": ["x"]},
        {"claim": "groups", "any_of": ["x"], "drm_systems": ["betamax"], "surprise": 1},
    )
    with pytest.raises(ConfigError) as raised:
        build_pipeline(config)
    paths = [path for path, _ in raised.value.errors]
    assert "access.entitlement.rules[0]" in paths
    assert "access.entitlement.rules[1].any_of" in paths
    assert "access.entitlement.rules[2].claim" in paths
    assert "access.entitlement.rules[3].drm_systems[0]" in paths
    assert "access.entitlement.rules[3].surprise" in paths
