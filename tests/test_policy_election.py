"""Election through the real pipeline: which policy a token's claims elect, and why."""

from __future__ import annotations

import json
import uuid
from typing import Any

import pytest
from google.protobuf import json_format

from licenseproxy.v1 import license_proxy_pb2 as pb
from plugins.policy import claim_matches
from proxy import ProxyError, Reason, hookimpl
from proxy.builder import build_pipeline
from proxy.encoding import b64url_encode
from proxy.explain import SyntheticInspector
from proxy.model import DrmSystem, LicenseRequest, Principal
from proxy.testing import proxy_config
from tests.conftest import clearkey_request

KID = uuid.UUID("4060a865-8878-4267-9cbf-91ae5bae1e72").bytes
OTHER_KID = uuid.UUID("9eb4050d-e44b-4802-932e-27d75083e266").bytes


def pipeline_with(policies: list[dict[str, Any]], *, plugins=(), **sections: Any):
    """The embedded default with these policies (each served by the ClearKey backend)."""
    for policy in policies:
        policy.setdefault("backends", ["clearkey"])
    return build_pipeline(proxy_config({"policies": policies, **sections}), plugins=plugins)


def request(token: str, *, dry_run: bool = True, **kwargs: Any) -> LicenseRequest:
    return LicenseRequest(
        challenge=kwargs.pop("challenge", clearkey_request(KID)),
        token=token,
        request_id="test",
        dry_run=dry_run,
        **kwargs,
    )


async def elected(pipeline, token: str, **kwargs: Any) -> str:
    """The elected policy's name, or the reason code of the refusal."""
    try:
        return (await pipeline.acquire(request(token, **kwargs))).policy
    except ProxyError as error:
        return error.reason.value


# -- the MK.IO example: several options, the one whose required claims match is elected ----

MKIO_POLICIES = [
    {
        "name": "widevine-persistent",
        "match": {"claims": {"persistency": "permanent"}},
        "license": {"persistent": True},
    },
    {
        "name": "widevine-2h",
        "match": {"claims": {"persistency": "2hours"}},
        "license": {"persistent": False, "license_duration": "2h"},
    },
]


@pytest.mark.parametrize(
    ("claims", "expected"),
    [
        ({"persistency": "permanent"}, "widevine-persistent"),
        ({"persistency": "2hours"}, "widevine-2h"),
        ({"persistency": "forever"}, "NO_MATCHING_POLICY"),
        ({"persistency": ["2hours"]}, "widevine-2h"),
        ({"persistency": 2}, "NO_MATCHING_POLICY"),
        ({}, "NO_MATCHING_POLICY"),
    ],
)
async def test_mkio_custom_claims_elect_the_option(claims, expected, dev_token):
    pipeline = pipeline_with([dict(p) for p in MKIO_POLICIES])
    assert await elected(pipeline, dev_token(claims)) == expected
    assert await elected(pipeline, dev_token(claims), dry_run=False) == expected


async def test_the_elected_option_carries_its_license_settings(dev_token):
    pipeline = pipeline_with([dict(p) for p in MKIO_POLICIES])
    result = await pipeline.acquire(request(dev_token({"persistency": "2hours"})))
    assert result.effective_policy["license"] == {
        "persistent": False,
        "license_duration": 7200,
        "renewal": {},
    }


# -- ordering: priority, then specificity, then file order ------------------------------

ORDER_CASES: dict[str, tuple[list[dict[str, Any]], dict[str, Any], str]] = {
    "higher priority wins over file order": (
        [{"name": "first"}, {"name": "urgent", "priority": 10}],
        {},
        "urgent",
    ),
    "higher priority wins over specificity": (
        [
            {"name": "specific", "match": {"claims": {"tier": "gold", "region": "eu"}}},
            {"name": "broad", "priority": 1},
        ],
        {"tier": "gold", "region": "eu"},
        "broad",
    ),
    "more specific wins at equal priority": (
        [
            {"name": "broad", "match": {"claims": {"tier": "gold"}}},
            {"name": "specific", "match": {"claims": {"tier": "gold", "region": "eu"}}},
        ],
        {"tier": "gold", "region": "eu"},
        "specific",
    ),
    "the less specific wins when the specific one does not match": (
        [
            {"name": "broad", "match": {"claims": {"tier": "gold"}}},
            {"name": "specific", "match": {"claims": {"tier": "gold", "region": "eu"}}},
        ],
        {"tier": "gold", "region": "us"},
        "broad",
    ),
    "file order breaks a full tie": (
        [
            {"name": "one", "match": {"claims": {"tier": "gold"}}},
            {"name": "two", "match": {"claims": {"tier": ["gold", "silver"]}}},
        ],
        {"tier": "gold"},
        "one",
    ),
    "negative priority ranks below the default": (
        [{"name": "fallback", "priority": -1}, {"name": "normal"}],
        {},
        "normal",
    ),
    "a content pattern counts as a condition": (
        [{"name": "any"}, {"name": "movies", "match": {"content_ids": ["movies/*"]}}],
        {},
        "movies",
    ),
}


@pytest.mark.parametrize("case", ORDER_CASES)
async def test_priority_then_specificity_then_file_order(case, dev_token):
    policies, claims, expected = ORDER_CASES[case]
    pipeline = pipeline_with([dict(p) for p in policies])
    assert await elected(pipeline, dev_token(claims), content_id="movies/1") == expected


# -- conditions ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("condition", "claims", "holds"),
    [
        ("gold", {"tier": "gold"}, True),
        ("gold", {"tier": "Gold"}, False),
        (["gold", "silver"], {"tier": "silver"}, True),
        (["gold", "silver"], {"tier": "bronze"}, False),
        ("premium", {"tier": ["basic", "premium"]}, True),
        ({"present": True}, {"tier": "anything"}, True),
        ({"present": True}, {}, False),
        ({"present": False}, {}, True),
        ({"present": False}, {"tier": "x"}, False),
        (1, {"tier": True}, False),
        (True, {"tier": 1}, False),
        (5, {"tier": 5}, True),
        ([], {"tier": "gold"}, False),
    ],
)
async def test_claim_conditions(condition, claims, holds, dev_token):
    assert claim_matches(claims.get("tier"), condition) is holds
    pipeline = pipeline_with([{"name": "p", "match": {"claims": {"tier": condition}}}])
    assert await elected(pipeline, dev_token(claims)) == ("p" if holds else "NO_MATCHING_POLICY")


def synthetic(drm: DrmSystem, *key_ids: bytes, content_id: str | None = None):
    return ("synthetic", SyntheticInspector(drm, key_ids, content_id))


@pytest.mark.parametrize(
    ("match", "drm", "key_ids", "content_id", "holds"),
    [
        ({"drm_systems": ["widevine"]}, DrmSystem.WIDEVINE, (KID,), None, True),
        ({"drm_systems": ["widevine", "playready"]}, DrmSystem.FAIRPLAY, (KID,), None, False),
        ({"content_ids": ["movies/*"]}, DrmSystem.WIDEVINE, (KID,), "movies/42", True),
        ({"content_ids": ["movies/*"]}, DrmSystem.WIDEVINE, (KID,), "series/42", False),
        ({"content_ids": ["movies/*"]}, DrmSystem.WIDEVINE, (KID,), None, False),
        ({"content_ids": ["movie-[0-9]"]}, DrmSystem.WIDEVINE, (KID,), "movie-7", True),
        ({"key_ids": [str(uuid.UUID(bytes=KID))]}, DrmSystem.WIDEVINE, (KID,), None, True),
        (
            {"key_ids": [str(uuid.UUID(bytes=KID))]},
            DrmSystem.WIDEVINE,
            (KID, OTHER_KID),
            None,
            False,
        ),
        ({"key_ids": [str(uuid.UUID(bytes=KID))]}, DrmSystem.WIDEVINE, (), None, False),
    ],
)
async def test_drm_content_and_key_conditions(match, drm, key_ids, content_id, holds, dev_token):
    pipeline = pipeline_with(
        [{"name": "p", "match": match}],
        plugins=[synthetic(drm, *key_ids, content_id=content_id)],
    )
    assert await elected(pipeline, dev_token()) == ("p" if holds else "NO_MATCHING_POLICY")


async def test_a_content_id_in_the_request_is_matched(dev_token):
    pipeline = pipeline_with([{"name": "p", "match": {"content_ids": ["movies/*"]}}])
    assert await elected(pipeline, dev_token(), content_id="movies/1") == "p"
    assert await elected(pipeline, dev_token(), content_id="moviesX") == "NO_MATCHING_POLICY"


# -- a token naming its policy ------------------------------------------------------------

NAMED_POLICIES = [
    {"name": "standard", "priority": 5},
    {"name": "premium", "match": {"claims": {"tier": "premium"}}},
    {"name": "trial", "match": {"claims": {"tier": "trial"}}},
]


@pytest.mark.parametrize(
    ("claims", "expected", "detail"),
    [
        ({"tier": "premium"}, "standard", None),
        ({"tier": "premium", "policy_name": "premium"}, "premium", None),
        ({"tier": "trial", "policy_name": "premium"}, "NO_MATCHING_POLICY", "whose conditions"),
        ({"policy_name": "premium"}, "NO_MATCHING_POLICY", "whose conditions"),
        ({"policy_name": "gold"}, "NO_MATCHING_POLICY", "not configured"),
        ({"policy_name": 7}, "NO_MATCHING_POLICY", "not configured"),
        ({"policy_name": "standard"}, "standard", None),
    ],
)
async def test_a_token_names_a_policy_only_among_those_it_matches(
    claims, expected, detail, dev_token
):
    pipeline = pipeline_with([dict(p) for p in NAMED_POLICIES])
    try:
        result = await pipeline.acquire(request(dev_token(claims)))
    except ProxyError as error:
        assert error.reason is Reason.NO_MATCHING_POLICY == Reason(expected)
        assert detail in error.detail
    else:
        assert result.policy == expected


async def test_the_name_claim_is_configurable_and_can_be_turned_off(dev_token):
    policies = [dict(p) for p in NAMED_POLICIES]
    renamed = pipeline_with(policies, policy_election={"name_claim": "urn:acme:policy"})
    claims = {"tier": "premium", "urn:acme:policy": "premium", "policy_name": "trial"}
    assert await elected(renamed, dev_token(claims)) == "premium"
    off = pipeline_with([dict(p) for p in NAMED_POLICIES], policy_election={"name_claim": ""})
    assert (
        await elected(off, dev_token({"tier": "premium", "policy_name": "premium"})) == "standard"
    )


# -- the decision trace --------------------------------------------------------------------


async def test_the_trace_says_which_claims_matched_which_policy_and_why_others_lost(dev_token):
    policies = [
        {"name": "broad", "match": {"claims": {"tier": "gold"}}},
        {"name": "specific", "match": {"claims": {"tier": "gold", "region": "eu"}}},
        {"name": "silver", "match": {"claims": {"tier": "silver"}}},
        {"name": "low", "priority": -5},
    ]
    pipeline = pipeline_with(policies)
    result = await pipeline.acquire(request(dev_token({"tier": "gold", "region": "eu"})))
    [step] = [s for s in result.trace if s.hook == "proxy_select_policy"]
    assert step.plugin == "policy" and step.verdict == "policy:specific"
    text = "\n".join(step.reasons)
    assert "'broad' is a candidate (claim tier = 'gold'; priority 0)" in text
    assert "'silver' is not a candidate: claim tier is 'gold' (needs claim tier = 'silver')" in text
    assert "elected 'specific'" in text
    assert "'broad' lost: less specific (1 < 2 conditions)" in text
    assert "'low' lost: lower priority (-5 < 0)" in text
    assert f"key {uuid.UUID(bytes=KID)}: no known track type" in text


async def test_a_refusal_keeps_its_reasons_in_the_trace(dev_token):
    from proxy.explain import ContextKeeper

    keeper = ContextKeeper()
    pipeline = pipeline_with(
        [{"name": "only", "match": {"claims": {"tier": "gold"}}}],
        plugins=[("keeper", keeper)],
    )
    with pytest.raises(ProxyError) as raised:
        await pipeline.acquire(request(dev_token({"tier": "tin"})))
    assert raised.value.reason is Reason.NO_MATCHING_POLICY
    [step] = [s for s in keeper.ctx.trace if s.hook == "proxy_select_policy"]
    assert step.verdict == "no opinion"
    assert "'only' is not a candidate: claim tier is 'tin'" in step.reasons[0]
    assert step.reasons[-1] == "no policy's conditions all hold"


async def test_untraced_requests_put_nothing_into_words(dev_token):
    class Spy:
        notes: list[str] = []

        @hookimpl(trylast=True)
        def proxy_select_backends(self, ctx, principal, policy):
            Spy.notes = list(ctx.trace or [])

    pipeline = pipeline_with([{"name": "p"}], plugins=[Spy()])
    await pipeline.acquire(request(dev_token(), dry_run=False))
    assert Spy.notes == []


async def test_dry_run_over_grpc_and_http_returns_the_policy_and_the_trace(
    proxy_factory, http, dev_token
):
    # Dry runs answer the whole decision trace: only trusted callers may ask for one.
    config = proxy_config(
        {
            "policies": [dict(p, backends=["clearkey"]) for p in MKIO_POLICIES],
            "server": {"trusted_proxies": ["127.0.0.0/8"]},
        }
    )
    proxy = await proxy_factory(config)
    token = dev_token({"persistency": "permanent"})
    response = await proxy.stub().AcquireLicense(
        pb.AcquireLicenseRequest(
            drm_system=pb.DRM_SYSTEM_CLEARKEY,
            challenge=clearkey_request(KID),
            token=token,
            dry_run=True,
        )
    )
    assert response.dry_run and response.license == b"" and response.policy == "widevine-persistent"
    policy = json_format.MessageToDict(response.effective_policy)
    assert policy["name"] == "widevine-persistent" and policy["license"]["persistent"] is True
    hooks = [step.hook for step in response.trace if step.verdict != "no opinion"]
    assert hooks[:2] == ["proxy_inspect_challenge", "proxy_authenticate"]
    [election] = [s for s in response.trace if s.hook == "proxy_select_policy"]
    assert any("claim persistency = 'permanent'" in r for r in election.reasons)

    body = {
        "drmSystem": "DRM_SYSTEM_CLEARKEY",
        "challenge": b64url_encode(clearkey_request(KID)),
        "token": dev_token({"persistency": "2hours"}),
        "dryRun": True,
    }
    async with http.post(f"{proxy.http_url}/v1/license:acquire", json=body) as answer:
        assert answer.status == 200
        doc = await answer.json()
    assert doc["policy"] == "widevine-2h"
    # a Struct keeps its keys as they are: the policy's own field names
    assert doc["effectivePolicy"]["license"]["license_duration"] == 7200
    assert any(step["hook"] == "proxy_select_policy" for step in doc["trace"])
    body["token"] = dev_token({"persistency": "none"})
    async with http.post(f"{proxy.http_url}/v1/license:acquire", json=body) as answer:
        assert answer.status == 403
        assert json.loads(await answer.read())["reason"] == "NO_MATCHING_POLICY"


async def test_a_principal_without_claims_never_matches_a_claim_condition():
    class Anonymous:
        @hookimpl(tryfirst=True)
        def proxy_authenticate(self, ctx):
            return Principal(subject=None, issuer=None, claims={})

    pipeline = pipeline_with(
        [{"name": "gold", "match": {"claims": {"tier": {"present": True}}}}], plugins=[Anonymous()]
    )
    assert await elected(pipeline, "") == "NO_MATCHING_POLICY"
