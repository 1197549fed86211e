"""Claims that carry policy: honoured for trusted issuers only, and only to tighten."""

from __future__ import annotations

import json
import logging
import uuid
from dataclasses import dataclass
from typing import Any

import grpc
import pytest

from proxy import ProxyError, Reason, hookimpl
from proxy.builder import build_pipeline
from proxy.explain import SyntheticInspector
from proxy.model import DrmSystem, LicenseRequest, Principal
from proxy.policy import CgmsA, Hdcp, TrackRules, TrackType, WidevineSecurityLevel
from proxy.testing import proxy_config

SD_KID = uuid.UUID("c9a0d00c-cd2b-4509-aaa8-95b5d68a7382").bytes
HD_KID = uuid.UUID("bda0d55c-ad24-2211-faa2-25a5d6d8144a").bytes
AUDIO_KID = uuid.UUID("0a0b0c0d-0000-4000-8000-000000000001").bytes
LOOSE_KID = uuid.UUID("0a0b0c0d-0000-4000-8000-000000000002").bytes
ALL_KIDS = (SD_KID, HD_KID, AUDIO_KID, LOOSE_KID)


def kid(key: bytes) -> str:
    return str(uuid.UUID(bytes=key))


class StaticSts:
    """Stands in for a token issuer: each token string maps to a set of claims, and the
    issuer's configuration says whether it is trusted with policy claims."""

    def __init__(self, trusted: bool) -> None:
        self.trusted = trusted
        self.claims: dict[str, dict[str, Any]] = {}

    def token(self, claims: dict[str, Any]) -> str:
        token = f"t{len(self.claims)}"
        self.claims[token] = claims
        return token

    @hookimpl(tryfirst=True)
    def proxy_authenticate(self, ctx):
        claims = self.claims.get(ctx.request.token or "")
        if claims is None:
            return None
        return Principal(
            subject="alice",
            issuer="https://sts.example",
            claims=claims,
            trusts_policy_claims=self.trusted,
        )


#: A policy with an SD/HD split, and a catalog that types the keys.
POLICY = {
    "name": "split",
    "backends": ["clearkey"],
    "license": {"persistent": True, "license_duration": "1d", "renewal": {"enabled": True}},
    "tracks": {
        "DEFAULT": {"widevine_security_level": 1},
        "SD": {"widevine_security_level": 1, "hdcp": "HDCP_NONE"},
        "HD": {"widevine_security_level": 3, "hdcp": "HDCP_V1", "fairplay_allow_airplay": True},
    },
}
CATALOG = {
    "contents": {
        "movie-1": {kid(SD_KID): "SD", kid(HD_KID): "HD", kid(AUDIO_KID): "AUDIO"},
    }
}


class Capture:
    """Sees the effective policy the pipeline hands to backend selection (and adapters)."""

    def __init__(self) -> None:
        self.policy: Any = None
        self.notes: list[str] = []

    @hookimpl(tryfirst=True)
    def proxy_select_backends(self, ctx, principal, policy):
        self.policy = policy
        self.notes = [r for s in ctx.trace if s.hook == "proxy_select_policy" for r in s.reasons]


@dataclass
class Setup:
    pipeline: Any
    sts: StaticSts
    capture: Capture

    async def effective(self, claims: dict[str, Any]):
        """The effective policy for a token with these claims, and the election's notes."""
        token = self.sts.token(claims)
        await self.pipeline.acquire(
            LicenseRequest(challenge=b"synthetic", token=token, request_id="t", dry_run=True)
        )
        return self.capture.policy, self.capture.notes


def make(trusted: bool = True, drm: DrmSystem = DrmSystem.WIDEVINE, config=None, **sections: Any):
    sts = StaticSts(trusted)
    capture = Capture()
    inspector = SyntheticInspector(drm, ALL_KIDS, "movie-1")
    config = config or proxy_config({"policies": [POLICY], "catalog": CATALOG, **sections})
    pipeline = build_pipeline(
        config, plugins=[("sts", sts), ("synthetic", inspector), ("capture", capture)]
    )
    return Setup(pipeline, sts, capture)


VMX_CLAIMS = {
    "security_policy": {
        "EB119443-186B-4DEA-A7B7-8E5089FDD6B6": {
            "widevine": {
                "security_level": 5,
                "required_output_protection": {"hdcp": "HDCP_V2_2", "cgms_flags": "COPY_NEVER"},
            }
        },
        "B04CAC99-6AC2-412A-A60B-E764723E768D": {
            "widevine": {"required_output_protection": {"hdcp": "HDCP_V1"}}
        },
        "5d6c3a52-0000-4000-8000-00000000aaaa": {
            "widevine": {"required_output_protection": {"disable_analog_output": True}}
        },
    },
    "track_type_policy": {"HD": "eb119443-186b-4dea-a7b7-8e5089fdd6b6"},
    "default_security_policy": "B04CAC99-6AC2-412A-A60B-E764723E768D",
    "track_policy": {kid(AUDIO_KID): "5d6c3a52-0000-4000-8000-00000000aaaa"},
}


async def test_verimatrix_security_policies_tighten_per_track_type_key_and_default():
    setup = make()
    policy, notes = await setup.effective(VMX_CLAIMS)
    # HD: the track-type policy (stricter than the configured HD rules)
    assert policy.tracks["HD"] == TrackRules(
        widevine_security_level=WidevineSecurityLevel.HW_SECURE_ALL,
        hdcp=Hdcp.V2_2,
        cgms_a=CgmsA.COPY_NEVER,
        fairplay_allow_airplay=True,
    )
    assert policy.rules_for_key(HD_KID) == policy.tracks["HD"]
    # SD and DEFAULT: the default security policy
    assert policy.rules_for_key(SD_KID) == TrackRules(widevine_security_level=1, hdcp=Hdcp.V1)
    assert policy.rules_for_key(LOOSE_KID) == TrackRules(widevine_security_level=1, hdcp=Hdcp.V1)
    # AUDIO has a key policy, so the default does not apply to it (as with Verimatrix)
    assert policy.rules_for_key(AUDIO_KID) == TrackRules(
        widevine_security_level=1, disable_analog_output=True
    )
    assert policy.key_track_types == {
        SD_KID: TrackType.SD,
        HD_KID: TrackType.HD,
        AUDIO_KID: TrackType.AUDIO,
    }
    assert any("trusted issuer 'https://sts.example'" in n for n in notes)
    assert any(n.startswith("tightened tracks.HD.widevine_security_level") for n in notes)


async def test_an_untrusted_issuer_s_policy_claims_are_ignored():
    setup = make(trusted=False)
    policy, notes = await setup.effective(VMX_CLAIMS)
    assert policy.tracks == {k: TrackRules.model_validate(v) for k, v in POLICY["tracks"].items()}
    assert policy.key_rules == {}
    assert any("not trusted with policy claims" in n and "security_policy" in n for n in notes)


async def test_a_malformed_claim_from_an_untrusted_issuer_is_ignored_too():
    setup = make(trusted=False)
    policy, _ = await setup.effective({"security_policy": "nonsense"})
    assert policy.name == "split"


async def test_loosening_claims_are_ignored_and_logged(caplog):
    setup = make()
    claims = {
        "security_policy": {"weak": {"widevine": {"security_level": 1, "hdcp": "HDCP_NONE"}}},
        "track_type_policy": {"HD": "weak"},
        "policy": {"widevine": {"license_duration": 30 * 86400, "can_persist": True}},
    }
    with caplog.at_level(logging.INFO, logger="plugins.policy"):
        policy, notes = await setup.effective(claims)
    assert policy.tracks["HD"] == TrackRules.model_validate(POLICY["tracks"]["HD"])
    assert policy.license.license_duration == 86400
    ignored = [n for n in notes if n.startswith("ignored a change")]
    assert len(ignored) == 3
    assert any("tracks.HD.widevine_security_level: SW_SECURE_CRYPTO ignored" in n for n in ignored)
    assert any(
        "license.license_duration: 2592000 ignored (looser than the policy" in n for n in ignored
    )
    logged = [r.getMessage() for r in caplog.records if "ignored a change" in r.getMessage()]
    assert len(logged) == 3 and all("https://sts.example" in m for m in logged)


@pytest.mark.parametrize(
    ("drm", "duration", "persistent"),
    [
        (DrmSystem.WIDEVINE, 3600, False),
        (DrmSystem.PLAYREADY, 600, True),
        (DrmSystem.FAIRPLAY, 86400, True),
    ],
)
async def test_the_license_claim_tightens_per_drm(drm, duration, persistent):
    setup = make(drm=drm)
    claims = {
        "policy": {
            "widevine": {"license_duration_seconds": 3600, "can_persist": False},
            "playready": {"duration": 600},
        }
    }
    policy, _ = await setup.effective(claims)
    assert policy.license.license_duration == duration
    assert policy.license.persistent is persistent
    assert policy.license.renewal.enabled is True


async def test_neutral_fields_in_a_claim_apply_to_every_drm():
    setup = make(drm=DrmSystem.FAIRPLAY)
    claims = {
        "policy": {"renewal": {"enabled": False}, "expiry": "2030-01-01T00:00:00Z"},
        "security_policy": {"p": {"fairplay_allow_airplay": False}},
        "track_type_policy": {"HD": "p"},
    }
    policy, _ = await setup.effective(claims)
    assert policy.license.renewal.enabled is False
    assert policy.license.expiry.year == 2030
    assert policy.tracks["HD"].fairplay_allow_airplay is False


AXINOM_CLAIMS = {
    "content_keys_source": {
        "inline": [
            {"id": kid(SD_KID), "usage_policy": "SD"},
            {"id": kid(HD_KID), "usage_policy": "HD"},
            {"id": kid(AUDIO_KID)},
        ]
    },
    "content_key_usage_policies": [
        {
            "name": "SD",
            "fairplay": {"hdcp": "TYPE1", "allow_airplay": True, "allow_av_adapter": True},
            "widevine": {"cgms-a": "never"},
            "playready": {"analog_video_opl": 200, "uncompressed_digital_video_opl": 270},
        },
        {
            "name": "HD",
            "fairplay": {"hdcp": "TYPE1_STRICT", "allow_airplay": False, "allow_av_adapter": False},
            "widevine": {
                "device_security_level": "HW_SECURE_ALL",
                "cgms-a": "never",
                "hdcp": "NO_DIGITAL_OUTPUT",
            },
            "playready": {
                "min_device_security_level": "3000",
                "compressed_digital_video_opl": 500,
                "uncompressed_digital_video_opl": 300,
            },
        },
    ],
}


@pytest.mark.parametrize(
    ("drm", "sd", "hd"),
    [
        (
            DrmSystem.WIDEVINE,
            {"widevine_security_level": 1, "hdcp": "HDCP_NONE", "cgms_a": "COPY_NEVER"},
            {
                "widevine_security_level": 5,
                "hdcp": "HDCP_NO_DIGITAL_OUTPUT",
                "cgms_a": "COPY_NEVER",
                "fairplay_allow_airplay": True,
            },
        ),
        (
            DrmSystem.PLAYREADY,
            {
                "widevine_security_level": 1,
                "hdcp": "HDCP_NONE",
                "playready_output_protection": {
                    "analog_video": 200,
                    "uncompressed_digital_video": 270,
                },
            },
            {
                "widevine_security_level": 3,
                "hdcp": "HDCP_V1",
                "fairplay_allow_airplay": True,
                "playready_min_security_level": 3000,
                "playready_output_protection": {
                    "compressed_digital_video": 500,
                    "uncompressed_digital_video": 300,
                },
            },
        ),
        (
            DrmSystem.FAIRPLAY,
            # airplay and the AV adapter can't be granted where the policy left them unset
            {"widevine_security_level": 1, "hdcp": "HDCP_NONE", "fairplay_hdcp": "TYPE1"},
            {
                "widevine_security_level": 3,
                "hdcp": "HDCP_V1",
                "fairplay_hdcp": "TYPE1_STRICT",
                "fairplay_allow_airplay": False,
                "fairplay_allow_av_adapter": False,
            },
        ),
    ],
)
async def test_axinom_usage_policies_tighten_each_key_for_its_drm(drm, sd, hd):
    setup = make(drm=drm)
    policy, _ = await setup.effective(AXINOM_CLAIMS)
    assert policy.rules_for_key(SD_KID) == TrackRules.model_validate(sd)
    assert policy.rules_for_key(HD_KID) == TrackRules.model_validate(hd)
    # a key without a usage policy keeps its track's rules
    assert AUDIO_KID not in policy.key_rules


async def test_when_several_rules_touch_one_key_the_most_restrictive_wins():
    setup = make()
    claims = {
        **AXINOM_CLAIMS,
        "security_policy": {
            "a": {"widevine": {"security_level": 4, "hdcp": "HDCP_V2"}},
            "b": {"widevine": {"security_level": 2, "hdcp": "HDCP_V2_3"}},
        },
        "track_policy": {kid(SD_KID): "a"},
        "track_type_policy": {"SD": "b"},
    }
    policy, _ = await setup.effective(claims)
    assert policy.rules_for_key(SD_KID) == TrackRules(
        widevine_security_level=4, hdcp=Hdcp.V2_3, cgms_a=CgmsA.COPY_NEVER
    )


@pytest.mark.parametrize(
    ("claims", "where"),
    [
        ({"security_policy": "x"}, "security_policy must be an object"),
        (
            {"security_policy": {"p": {"widevine": {"security_levle": 5}}}},
            "security_policy.p.widevine.security_levle: unknown rule",
        ),
        (
            {"security_policy": {"p": {"widevine": {"security_level": 9}}}},
            "security_policy.p.widevine",
        ),
        (
            {
                "security_policy": {
                    "p": {
                        "widevine": {
                            "hdcp": "HDCP_V2",
                            "required_output_protection": {"hdcp": "HDCP_V1"},
                        }
                    }
                }
            },
            "given twice",
        ),
        ({"security_policy": {"p": {"hdcp": "nope"}}}, "security_policy.p.hdcp"),
        (
            {"security_policy": {"p": {}}, "track_type_policy": {"HD": "q"}},
            "security policy 'q' is not defined",
        ),
        ({"default_security_policy": "p"}, "is not defined in security_policy"),
        (
            {"security_policy": {"p": {}}, "track_policy": {"not-a-key": "p"}},
            "track_policy.not-a-key: not a key id",
        ),
        (
            {"security_policy": {"p": {}}, "track_type_policy": {"HD": 5}},
            "a security policy id is a non-empty string",
        ),
        (
            {"policy": {"widevine": {"can_fly": True}}},
            "policy.widevine.can_fly: unknown license setting",
        ),
        ({"policy": {"widevine": {"license_duration": "soon"}}}, "policy.widevine"),
        ({"policy": {"expiry": "2030-01-01T00:00:00"}}, "policy.expiry"),
        (
            {"content_key_usage_policies": {"name": "x"}},
            "content_key_usage_policies must be a list",
        ),
        ({"content_key_usage_policies": [{"widevine": {}}]}, "a usage policy needs a name"),
        ({"content_key_usage_policies": [{"name": "a"}, {"name": "a"}]}, "defined twice"),
        (
            {"content_keys_source": {"inline": [{"id": kid(SD_KID), "usage_policy": "SD"}]}},
            "'SD' is not defined",
        ),
        ({"content_keys_source": {"inline": "x"}}, "content_keys_source.inline must be a list"),
        ({"key_track_types": {kid(SD_KID): "FHD"}}, "unknown track type"),
        ({"key_track_types": "HD"}, "must be an object or a list"),
    ],
)
async def test_a_trusted_claim_that_cant_be_read_refuses_the_request(claims, where):
    setup = make()
    with pytest.raises(ProxyError) as raised:
        await setup.effective(claims)
    assert raised.value.reason is Reason.TOKEN_MALFORMED
    assert where in raised.value.detail
    assert raised.value.detail.startswith("a policy claim can't be read: ")


async def test_an_unknown_track_type_in_a_track_type_policy_is_skipped_with_a_note():
    setup = make()
    claims = {"security_policy": {"p": {"hdcp": "HDCP_V2"}}, "track_type_policy": {"UHD9": "p"}}
    policy, notes = await setup.effective(claims)
    assert policy.tracks["HD"].hdcp is Hdcp.V1
    assert any("track_type_policy.UHD9: not a track type" in n for n in notes)


async def test_the_key_track_types_claim_types_keys_the_catalog_does_not_know():
    setup = make()
    claims = {
        "key_track_types": [
            {"id": kid(LOOSE_KID), "track_type": "hd"},
            {"id": kid(SD_KID), "track_type": "HD"},
        ]
    }
    policy, notes = await setup.effective(claims)
    assert policy.key_track_types[LOOSE_KID] is TrackType.HD
    assert policy.key_track_types[SD_KID] is TrackType.SD  # the catalog wins
    assert any("the catalog says SD" in n for n in notes)
    assert policy.rules_for_key(LOOSE_KID).widevine_security_level == 3

    untrusted = make(trusted=False)
    policy, _ = await untrusted.effective({"key_track_types": {kid(LOOSE_KID): "HD"}})
    assert LOOSE_KID not in policy.key_track_types


async def test_claim_names_are_configurable_and_can_be_turned_off():
    setup = make(
        policy_election={
            "key_track_types_claim": "",
            "policy_claims": {
                "security_policy": "urn:acme:sp",
                "track_type_policy": "urn:acme:ttp",
                "license_policy": "",
            },
        }
    )
    claims = {
        "urn:acme:sp": {"p": {"hdcp": "HDCP_V2"}},
        "urn:acme:ttp": {"HD": "p"},
        "policy": {"nonsense": True},
        "key_track_types": {kid(LOOSE_KID): "HD"},
    }
    policy, _ = await setup.effective(claims)
    assert policy.tracks["HD"].hdcp is Hdcp.V2
    assert LOOSE_KID not in policy.key_track_types


async def test_security_policies_defined_but_never_assigned_change_nothing():
    setup = make()
    policy, notes = await setup.effective({"security_policy": {"p": {"hdcp": "HDCP_V2"}}})
    assert policy.tracks["HD"].hdcp is Hdcp.V1
    assert any("no claim assigns them" in n for n in notes)


async def test_the_token_plugin_s_issuer_trust_setting_is_honoured(dev_token):
    """End to end with real tokens: the dev issuer trusted, then not."""
    config = proxy_config({"policies": [POLICY], "catalog": CATALOG})
    config["auth"]["issuers"][0]["trust_policy_claims"] = True
    setup = make(config=config)
    await setup.pipeline.acquire(
        LicenseRequest(challenge=b"x", token=dev_token(VMX_CLAIMS), request_id="t", dry_run=True)
    )
    assert setup.capture.policy.tracks["HD"].widevine_security_level == 5
    config["auth"]["issuers"][0]["trust_policy_claims"] = False
    setup = make(config=config)
    await setup.pipeline.acquire(
        LicenseRequest(challenge=b"x", token=dev_token(VMX_CLAIMS), request_id="t", dry_run=True)
    )
    assert setup.capture.policy.tracks["HD"].widevine_security_level == 3


async def test_an_unreadable_trusted_claim_is_token_malformed_on_both_transports(
    proxy_factory, http, dev_token
):
    from licenseproxy.v1 import license_proxy_pb2 as pb
    from tests.conftest import clearkey_request

    config = proxy_config({"policies": [POLICY]})
    config["auth"]["issuers"][0]["trust_policy_claims"] = True
    proxy = await proxy_factory(config)
    token = dev_token({"security_policy": {"p": {"widevine": {"levels": 9}}}})
    challenge = clearkey_request(SD_KID)
    async with http.post(
        f"{proxy.http_url}/v1/licenses/clearkey",
        data=challenge,
        headers={"Authorization": f"Bearer {token}"},
    ) as answer:
        assert answer.status == 401
        problem = await answer.json(content_type=None)
    assert problem["reason"] == "TOKEN_MALFORMED"
    assert "security_policy.p.widevine.levels: unknown rule" in problem["detail"]
    assert token not in json.dumps(problem)
    request = pb.AcquireLicenseRequest(
        drm_system=pb.DRM_SYSTEM_CLEARKEY, challenge=challenge, token=token
    )
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await proxy.stub().AcquireLicense(request)
    assert raised.value.code() is grpc.StatusCode.UNAUTHENTICATED
