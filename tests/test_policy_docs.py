"""docs/policies.md: its worked examples elect as shown, and each vendor adapter is sent
what the "What each vendor is sent" tables say."""

from __future__ import annotations

import json
import re
import tomllib
import uuid
from pathlib import Path
from typing import Any

import pytest

from plugins.policy.settings import CatalogSettings, ElectionSettings
from proxy import hookimpl
from proxy.builder import build_pipeline
from proxy.errors import ConfigError
from proxy.explain import SyntheticInspector
from proxy.model import ChallengeInfo, DrmSystem, LicenseRequest, RequestType
from proxy.policy import Policy
from proxy.testing import proxy_config, vendor_call

DOC = Path(__file__).parent.parent / "docs" / "policies.md"
KIDS = tuple(uuid.UUID(f"1f7c3d2a-54b4-4f38-9a52-0c6a1e9e0a0{i}").bytes for i in range(1, 5))
AUDIO, SD, HD, UHD1 = (str(uuid.UUID(bytes=k)) for k in KIDS)


def fenced(language: str) -> list[str]:
    """The doc's fenced blocks of one language ("" for blocks without one)."""
    blocks, body, current = [], [], None
    for line in DOC.read_text(encoding="utf-8").splitlines():
        if line.startswith("```"):
            if current is None:
                current, body = line[3:].strip(), []
            else:
                if current == language:
                    blocks.append("\n".join(body))
                current = None
        elif current is not None:
            body.append(line)
    return blocks


def examples() -> dict[str, dict[str, Any]]:
    """The worked examples' configs, by their first policy's name."""
    found = [tomllib.loads(b) for b in fenced("toml") if 'backend = "primary"' in b]
    return {doc["policies"][0]["name"]: doc for doc in found}


#: (example, claims, content id)
CASES = {
    "movie-rental": ({"entitlement": "rental"}, "movies/night-train"),
    "offline-download": ({"subscription": "family", "offline": True}, "series/s01e01"),
    "studio-split": ({}, "movies/night-train"),
}


def test_the_doc_has_the_three_examples():
    assert set(examples()) == set(CASES)


class Capture:
    def __init__(self) -> None:
        self.policy: Any = None

    @hookimpl(tryfirst=True)
    def proxy_select_backends(self, ctx, principal, policy):
        self.policy = policy


#: Backend settings the doc's tables assume: Azure/MK.IO renders Widevine in the template
#: and leaves PlayReady and FairPlay to the content key policy configured there.
DOC_SETTINGS: dict[str, dict[str, Any]] = {
    "azure": {
        "widevine_request": "template",
        "policy_enforced_by_vendor": ["playready", "fairplay"],
    },
    # The profile at EZDRM, and the KeyOS account, hold what their requests can't carry.
    "ezdrm": {"policy_enforced_by_vendor": True},
    "keyos": {"policy_enforced_by_vendor": True, "restrict_keys": True},
}


def doc_config(sandbox, example: str, vendor: str, **settings: Any) -> dict[str, Any]:
    """A config serving the example's policies from one backend of ``vendor``."""
    doc = examples()[example]
    config = proxy_config()
    extra = {**DOC_SETTINGS.get(vendor, {}), **settings}
    config["backends"] = {"primary": sandbox.backend(vendor, **extra)}
    config["policies"] = doc["policies"]
    if "catalog" in doc:
        config["catalog"] = doc["catalog"]
    return config


async def rendered(
    sandbox,
    example: str,
    vendor: str,
    drm: DrmSystem,
    dev_token,
    *,
    widevine: bool = True,
    only: list[str] | None = None,
    **settings: Any,
) -> dict[str, Any]:
    """What the adapter of ``vendor`` puts in its request for the example's elected policy
    (``widevine=False``: with the policies limited to PlayReady and FairPlay; ``only``: to
    these DRMs)."""
    doc = examples()[example]
    claims, content_id = CASES[example]
    config = proxy_config()
    extra = {**DOC_SETTINGS.get(vendor, {}), **settings}
    config["backends"] = {"primary": sandbox.backend(vendor, **extra)}
    config["policies"] = doc["policies"]
    if not widevine or only:
        limit = {"drm_systems": only or ["playready", "fairplay"]}
        config["policies"] = [
            {**p, "match": {**p.get("match", {}), **limit}} for p in doc["policies"]
        ]
    if "catalog" in doc:
        config["catalog"] = doc["catalog"]
    capture = Capture()
    pipeline = build_pipeline(
        config,
        plugins=[("synthetic", SyntheticInspector(drm, KIDS, content_id)), ("capture", capture)],
    )
    await pipeline.acquire(
        LicenseRequest(challenge=b"x", token=dev_token(claims), request_id="doc", dry_run=True)
    )
    challenge = ChallengeInfo(drm, RequestType.NEW, b"challenge", KIDS, content_id)
    call = vendor_call(challenge, capture.policy, content_id=content_id, backend="primary")
    request = pipeline.backends["primary"].adapter.build_request(call)
    return sandbox.vendors[vendor].policy_message(request)


def usage(message: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {p["name"]: p for p in message.get("content_key_usage_policies", [])}


def key_usage(message: dict[str, Any]) -> dict[str, str | None]:
    return {k["id"]: k.get("usage_policy") for k in message["content_keys_source"]["inline"]}


def specs(template: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {s["track_type"]: s for s in template.get("content_key_specs", [])}


@pytest.mark.parametrize("drm", [DrmSystem.WIDEVINE, DrmSystem.PLAYREADY, DrmSystem.FAIRPLAY])
async def test_the_rental_as_each_vendor_gets_it(vendor_sandbox, dev_token, drm):
    message = await rendered(vendor_sandbox, "movie-rental", "axinom", drm, dev_token)
    license = message["license"]
    assert license["allow_persistence"] is True and license["duration"] == 2592000
    assert license["widevine"]["allow_playback"] is True
    for section in ("widevine", "playready", "fairplay"):
        assert license[section]["playback_duration"] == 172800
    assert "rental_duration" not in json.dumps(license)
    assert set(key_usage(message).values()) == {"DEFAULT"}
    assert usage(message)["DEFAULT"]["widevine"] == {
        "device_security_level": "SW_SECURE_CRYPTO",
        "hdcp": "NONE",
    }

    claims = await rendered(vendor_sandbox, "movie-rental", "verimatrix", drm, dev_token)
    assert claims["policy"][drm.value] == {
        "can_play": True,
        "can_persist": True,
        "license_duration": 2592000,
        "rental_duration": 2592000,
        "playback_duration": 172800,
    }
    if drm is DrmSystem.WIDEVINE:
        [only] = claims["security_policy"].values()
        assert claims["default_security_policy"] in claims["security_policy"]
        assert only["widevine"] == {
            "security_level": 1,
            "required_output_protection": {"hdcp": "HDCP_NONE"},
        }
        for vendor in ("widevine_cloud", "azure"):
            template = await rendered(vendor_sandbox, "movie-rental", vendor, drm, dev_token)
            assert template["policy_overrides"] == {
                "can_play": True,
                "can_persist": True,
                "license_duration_seconds": 2592000,
                "rental_duration_seconds": 2592000,
                "playback_duration_seconds": 172800,
            }
            assert list(specs(template)) == ["AUDIO", "SD", "HD", "UHD1", "UHD2"]
            for spec in specs(template).values():
                assert spec["security_level"] == 1
                assert spec["required_output_protection"] == {"hdcp": "HDCP_NONE"}
    else:
        assert "security_policy" not in claims
        assert await rendered(vendor_sandbox, "movie-rental", "azure", drm, dev_token) == {}


@pytest.mark.parametrize(
    ("drm", "duration"),
    [(DrmSystem.WIDEVINE, 604800), (DrmSystem.PLAYREADY, 259200), (DrmSystem.FAIRPLAY, 604800)],
)
async def test_the_download_as_each_vendor_gets_it(vendor_sandbox, dev_token, drm, duration):
    message = await rendered(vendor_sandbox, "offline-download", "axinom", drm, dev_token)
    license = message["license"]
    assert license["allow_persistence"] is True and license["duration"] == duration
    assert license["widevine"] == {
        "allow_playback": True,
        "allow_renewal": True,
        "renewal_delay": 86400,
        "renewal_retry_interval": 3600,
        "renewal_recovery": 172800,
        "renewal_url": "https://licenses.example.com/v1/licenses/widevine",
        "renew_with_usage": False,
    }
    assert "content_key_usage_policies" not in message

    if drm is not DrmSystem.WIDEVINE:
        claims = await rendered(
            vendor_sandbox, "offline-download", "verimatrix", drm, dev_token, widevine=False
        )
        assert claims["policy"] == {
            drm.value: {
                "can_play": True,
                "can_persist": True,
                "can_renew": True,
                "license_duration": duration,
            }
        }
    if drm is DrmSystem.WIDEVINE:
        for vendor in ("widevine_cloud", "azure"):
            template = await rendered(vendor_sandbox, "offline-download", vendor, drm, dev_token)
            assert template["policy_overrides"] == {
                "can_play": True,
                "can_persist": True,
                "can_renew": True,
                "license_duration_seconds": 604800,
                "renewal_server_url": "https://licenses.example.com/v1/licenses/widevine",
                "renewal_delay_seconds": 86400,
                "renewal_retry_interval_seconds": 3600,
                "renewal_recovery_duration_seconds": 172800,
                "renew_with_usage": False,
            }
            assert "content_key_specs" not in template and "allowed_track_types" not in template
    else:
        assert await rendered(vendor_sandbox, "offline-download", "azure", drm, dev_token) == {}


@pytest.mark.parametrize("drm", [DrmSystem.WIDEVINE, DrmSystem.PLAYREADY, DrmSystem.FAIRPLAY])
async def test_the_split_as_each_vendor_gets_it(vendor_sandbox, dev_token, drm):
    message = await rendered(vendor_sandbox, "studio-split", "axinom", drm, dev_token)
    assert key_usage(message) == {AUDIO: "DEFAULT", SD: "DEFAULT", HD: "HD", UHD1: "UHD1"}
    policies = usage(message)
    assert policies["HD"]["widevine"] == {
        "device_security_level": "HW_SECURE_CRYPTO",
        "hdcp": "1.0",
    }
    assert policies["HD"]["playready"] == {
        "min_device_security_level": 3000,
        "analog_video_opl": 200,
        "uncompressed_digital_video_opl": 300,
    }
    assert policies["HD"]["fairplay"] == {"hdcp": "TYPE0"}
    assert policies["UHD1"]["widevine"] == {
        "device_security_level": "HW_SECURE_ALL",
        "hdcp": "2.2",
        "cgms-a": "never",
        "disable_analog_output": True,
    }
    assert policies["UHD1"]["playready"] == {
        "min_device_security_level": 3000,
        "compressed_digital_video_opl": 500,
        "uncompressed_digital_video_opl": 300,
    }
    assert policies["UHD1"]["fairplay"] == {
        "hdcp": "TYPE1",
        "allow_airplay": False,
        "allow_av_adapter": False,
    }
    assert message["license"]["allow_persistence"] is False
    assert message["license"]["duration"] == 43200

    if drm is not DrmSystem.WIDEVINE:
        assert await rendered(vendor_sandbox, "studio-split", "azure", drm, dev_token) == {}
        return
    for vendor in ("widevine_cloud", "azure"):
        template = await rendered(vendor_sandbox, "studio-split", vendor, drm, dev_token)
        by_track = specs(template)
        assert list(by_track) == ["AUDIO", "SD", "HD", "UHD1"]
        for track in ("AUDIO", "SD"):
            assert by_track[track]["security_level"] == 1
            assert by_track[track]["required_output_protection"] == {"hdcp": "HDCP_NONE"}
        assert by_track["HD"]["security_level"] == 3
        assert by_track["HD"]["required_output_protection"] == {"hdcp": "HDCP_V1"}
        assert by_track["UHD1"]["security_level"] == 5
        assert by_track["UHD1"]["required_output_protection"] == {
            "hdcp": "HDCP_V2_2",
            "cgms_flags": "COPY_NEVER",
            "disable_analog_output": True,
        }
        assert template["policy_overrides"] == {
            "can_play": True,
            "can_persist": False,
            "license_duration_seconds": 43200,
        }


@pytest.mark.parametrize("drm", [DrmSystem.PLAYREADY, DrmSystem.FAIRPLAY])
async def test_the_rental_as_drmtoday_and_doverunner_get_it(vendor_sandbox, dev_token, drm):
    crt = await rendered(vendor_sandbox, "movie-rental", "drmtoday", drm, dev_token, widevine=False)
    assert crt == {
        "assetId": "movies/night-train",
        "profile": {"type": "rental", "relativeExpiration": "P30D", "playDuration": "P2D"},
        "storeLicense": True,
    }
    policy = await rendered(vendor_sandbox, "movie-rental", "doverunner", drm, dev_token)
    assert policy == {
        "policy_version": 2,
        "playback_policy": {
            "persistent": True,
            "license_duration": 2592000,
            "rental_duration": 2592000,
            "playback_duration": 172800,
        },
    }


async def test_the_rental_for_widevine_at_drmtoday_and_doverunner(vendor_sandbox, dev_token):
    with pytest.raises(ConfigError) as raised:
        build_pipeline(doc_config(vendor_sandbox, "movie-rental", "drmtoday"))
    errors = dict(raised.value.errors)
    assert set(errors) == {
        "policies[0].tracks.DEFAULT.widevine_security_level",
        "policies[0].tracks.DEFAULT.hdcp",
    }
    assert "quality_classes" in errors["policies[0].tracks.DEFAULT.hdcp"]
    policy = await rendered(
        vendor_sandbox, "movie-rental", "doverunner", DrmSystem.WIDEVINE, dev_token
    )
    assert [e["track_type"] for e in policy["security_policy"]] == [
        "AUDIO",
        "SD",
        "HD",
        "UHD1",
        "UHD2",
    ]
    for entry in policy["security_policy"]:
        assert entry["widevine"] == {"security_level": 1, "required_hdcp_version": "HDCP_NONE"}


@pytest.mark.parametrize(("drm", "days"), [(DrmSystem.PLAYREADY, 3), (DrmSystem.FAIRPLAY, 7)])
async def test_the_download_as_drmtoday_and_doverunner_get_it(vendor_sandbox, dev_token, drm, days):
    crt = await rendered(
        vendor_sandbox, "offline-download", "drmtoday", drm, dev_token, widevine=False
    )
    assert crt == {
        "assetId": "series/s01e01",
        "profile": {"type": "rental", "relativeExpiration": f"P{days}D"},
        "storeLicense": True,
    }
    policy = await rendered(
        vendor_sandbox, "offline-download", "doverunner", drm, dev_token, widevine=False
    )
    assert policy == {
        "policy_version": 2,
        "playback_policy": {"persistent": True, "license_duration": days * 86400},
    }
    for vendor in ("drmtoday", "doverunner"):
        with pytest.raises(ConfigError) as raised:
            build_pipeline(doc_config(vendor_sandbox, "offline-download", vendor))
        assert set(dict(raised.value.errors)) == {"policies[0].license.renewal.recovery_window"}


async def test_the_split_as_drmtoday_and_doverunner_get_it(vendor_sandbox, dev_token):
    with pytest.raises(ConfigError) as raised:
        build_pipeline(doc_config(vendor_sandbox, "studio-split", "drmtoday"))
    errors = dict(raised.value.errors)
    for rule in (
        "allowed_track_types",
        "tracks.DEFAULT.hdcp",
        "tracks.UHD1.cgms_a",
        "tracks.UHD1.disable_analog_output",
        "tracks.HD.playready_min_security_level",
        "tracks.UHD1.fairplay_allow_airplay",
    ):
        assert f"policies[0].{rule}" in errors
    policy = await rendered(
        vendor_sandbox,
        "studio-split",
        "doverunner",
        DrmSystem.WIDEVINE,
        dev_token,
        only=["widevine"],
    )
    assert policy["playback_policy"] == {
        "persistent": False,
        "license_duration": 43200,
        "allowed_track_types": "SD_UHD1",
    }
    assert {e["track_type"]: e["widevine"] for e in policy["security_policy"]} == {
        "AUDIO": {"security_level": 1, "required_hdcp_version": "HDCP_NONE"},
        "SD": {"security_level": 1, "required_hdcp_version": "HDCP_NONE"},
        "HD": {"security_level": 3, "required_hdcp_version": "HDCP_V1"},
        "UHD1": {
            "security_level": 5,
            "required_hdcp_version": "HDCP_V2_2",
            "required_cgms_flags": "COPY_NEVER",
            "disable_analog_output": True,
        },
    }
    with pytest.raises(ConfigError) as raised:
        build_pipeline(doc_config(vendor_sandbox, "studio-split", "doverunner"))
    errors = dict(raised.value.errors)
    opl = "policies[0].tracks.UHD1.playready_output_protection.compressed_digital_video"
    assert "for playready can't render this" in errors[opl]
    assert "allowed_track_types_drms" in errors["policies[0].allowed_track_types"]


def test_verimatrix_refuses_the_split_at_start(vendor_sandbox):
    """Verimatrix licenses every key of the content: it can't leave UHD2 out, and by
    default it renders no PlayReady or FairPlay security policy."""
    with pytest.raises(ConfigError) as raised:
        build_pipeline(
            doc_config(
                vendor_sandbox, "studio-split", "verimatrix", security_policy_drms=["widevine"]
            )
        )
    errors = dict(raised.value.errors)
    assert "can't render this" in errors["policies[0].allowed_track_types"]
    assert "security_policy_drms" in errors["policies[0].tracks.HD.playready_min_security_level"]
    assert "security_policy_drms" in errors["policies[0].tracks.UHD1.fairplay_hdcp"]


def test_verimatrix_refuses_the_download_for_widevine_at_start(vendor_sandbox):
    """Its policy claim has no field for how long playback survives failed renewals."""
    with pytest.raises(ConfigError) as raised:
        build_pipeline(doc_config(vendor_sandbox, "offline-download", "verimatrix"))
    errors = dict(raised.value.errors)
    assert set(errors) == {"policies[0].license.renewal.recovery_window"}
    assert "for widevine can't render this" in errors["policies[0].license.renewal.recovery_window"]


def test_azure_refuses_rules_it_cant_send_unless_the_vendor_enforces_them(vendor_sandbox):
    with pytest.raises(ConfigError) as raised:
        build_pipeline(
            doc_config(
                vendor_sandbox,
                "movie-rental",
                "azure",
                widevine_request="raw",
                policy_enforced_by_vendor=False,
            )
        )
    errors = dict(raised.value.errors)
    message = errors["policies[0].license.license_duration"]
    assert "widevine, playready, fairplay" in message and "policy_enforced_by_vendor" in message
    build_pipeline(doc_config(vendor_sandbox, "movie-rental", "azure"))


#: The DRM each example's trace in the doc was taken with.
TRACE_DRM = {
    "movie-rental": DrmSystem.WIDEVINE,
    "offline-download": DrmSystem.PLAYREADY,
    "studio-split": DrmSystem.WIDEVINE,
}


async def test_the_traces_in_the_doc_are_what_explain_prints(dev_token):
    shown = {}
    for block in fenced(""):
        found = re.search(r"proxy_select_policy \[policy\] -> policy:(\S+)", block)
        if found:
            shown[found[1]] = [
                line.strip()[2:] for line in block.splitlines() if line.strip().startswith("- ")
            ]
    assert set(shown) == set(CASES)
    for name, reasons in shown.items():
        doc = examples()[name]
        claims, content_id = CASES[name]
        config = proxy_config({"policies": None})
        config["policies"] = [dict(p, backend="clearkey") for p in doc["policies"]]
        if "catalog" in doc:
            config["catalog"] = doc["catalog"]
        keys = KIDS[1:] + KIDS[:1] if name == "studio-split" else ()
        pipeline = build_pipeline(
            config, plugins=[("explain", SyntheticInspector(TRACE_DRM[name], keys, content_id))]
        )
        result = await pipeline.acquire(
            LicenseRequest(challenge=b"x", token=dev_token(claims), request_id="doc", dry_run=True)
        )
        [step] = [s for s in result.trace if s.hook == "proxy_select_policy"]
        assert step.reasons == reasons


def test_every_toml_block_of_the_doc_parses_and_its_sections_validate():
    blocks = fenced("toml")
    assert len(blocks) == 7
    for block in blocks:
        doc = tomllib.loads(block)
        for policy in doc.get("policies", []):
            Policy.model_validate(policy)
        if "policy_election" in doc:
            ElectionSettings.model_validate(doc["policy_election"])
        if "catalog" in doc:
            CatalogSettings.model_validate(doc["catalog"])


# -- EZDRM and BuyDRM KeyOS ---------------------------------------------------------------

DRMS = [DrmSystem.WIDEVINE, DrmSystem.PLAYREADY, DrmSystem.FAIRPLAY]


@pytest.mark.parametrize("example", list(CASES))
@pytest.mark.parametrize("drm", DRMS)
async def test_ezdrm_is_sent_the_challenge_at_the_policys_profile(
    vendor_sandbox, dev_token, example, drm
):
    profiles = {example: {"widevine": "1D331C", "playready": "2E442D"}}
    sent = await rendered(vendor_sandbox, example, "ezdrm", drm, dev_token, policy_px=profiles)
    assert sent["body"] == b"challenge"
    if drm is DrmSystem.FAIRPLAY:
        assert sent["url"].endswith("/api/licenses/" + CASES[example][1].replace("/", "%2F"))
    else:
        assert sent["url"].endswith(f"?pX={profiles[example][drm.value]}")


#: The rules each example can't put in a request, by example and vendor (key paths).
REFUSED_AT_START = {
    ("movie-rental", "ezdrm"): {
        "license.license_duration",
        "license.rental_duration",
        "license.playback_duration",
        "tracks.DEFAULT.widevine_security_level",
        "tracks.DEFAULT.hdcp",
    },
    ("movie-rental", "keyos"): {
        "license.license_duration",
        "license.rental_duration",
        "license.playback_duration",
    },
    ("offline-download", "keyos"): {
        "license.renewal.recovery_window",
        "license_overrides.playready.license_duration",
        "license.license_duration",
    },
    ("studio-split", "keyos"): {
        "allowed_track_types",
        "tracks.UHD1.disable_analog_output",
        "license.persistent",
        "license.license_duration",
        "tracks.HD.fairplay_hdcp",
        "tracks.UHD1.fairplay_hdcp",
        "tracks.UHD1.fairplay_allow_airplay",
        "tracks.UHD1.fairplay_allow_av_adapter",
    },
}


@pytest.mark.parametrize(("example", "vendor"), list(REFUSED_AT_START))
def test_what_ezdrm_and_keyos_cant_carry_fails_the_start_unless_the_vendor_enforces_it(
    vendor_sandbox, example, vendor
):
    refused = {"policy_enforced_by_vendor": False}
    if vendor == "keyos":
        refused["restrict_keys"] = False
    with pytest.raises(ConfigError) as raised:
        build_pipeline(doc_config(vendor_sandbox, example, vendor, **refused))
    first = {k.removeprefix("policies[0].") for k, _ in raised.value.errors if "[0]" in k}
    assert first == REFUSED_AT_START[example, vendor]
    build_pipeline(doc_config(vendor_sandbox, example, vendor))


async def test_the_rental_as_keyos_gets_it(vendor_sandbox, dev_token):
    unlisted = {"restrict_keys": False}
    facts = await rendered(
        vendor_sandbox, "movie-rental", "keyos", DrmSystem.WIDEVINE, dev_token, **unlisted
    )
    assert "key_ids" not in facts
    assert facts["widevine"] == {"can_play": True, "can_persist": True, "license_duration": 2592000}
    assert facts["widevine_specs"] == {
        track: {"security_level": 1, "RequiredHDCP": "HDCP_NONE"}
        for track in ("AUDIO", "SD", "HD", "UHD1", "UHD2")
    }
    facts = await rendered(
        vendor_sandbox, "movie-rental", "keyos", DrmSystem.PLAYREADY, dev_token, **unlisted
    )
    assert facts["playready_licenses"] == [{}]  # one bare License type="simple"
    facts = await rendered(
        vendor_sandbox, "movie-rental", "keyos", DrmSystem.FAIRPLAY, dev_token, **unlisted
    )
    assert facts["fairplay"] == {"persistent": True}


@pytest.mark.parametrize("drm", DRMS)
async def test_the_download_as_keyos_gets_it(vendor_sandbox, dev_token, drm):
    facts = await rendered(
        vendor_sandbox, "offline-download", "keyos", drm, dev_token, restrict_keys=False
    )
    assert "key_ids" not in facts
    if drm is DrmSystem.WIDEVINE:
        assert facts["widevine"] == {
            "can_play": True,
            "can_persist": True,
            "license_duration": 604800,
        }
        assert "widevine_specs" not in facts
    elif drm is DrmSystem.PLAYREADY:
        assert facts["playready_licenses"] == [{}]
    else:
        assert facts["fairplay"] == {"persistent": True}


@pytest.mark.parametrize("drm", DRMS)
async def test_the_split_as_keyos_gets_it(vendor_sandbox, dev_token, drm):
    facts = await rendered(vendor_sandbox, "studio-split", "keyos", drm, dev_token)
    assert facts["key_ids"] == [AUDIO, SD, HD, UHD1]
    if drm is DrmSystem.WIDEVINE:
        assert facts["widevine"] == {
            "can_play": True,
            "can_persist": False,
            "license_duration": 43200,
        }
        level1 = {"security_level": 1, "RequiredHDCP": "HDCP_NONE"}
        assert facts["widevine_specs"] == {
            "AUDIO": level1,
            "SD": level1,
            "HD": {"security_level": 3, "RequiredHDCP": "HDCP_V1"},
            "UHD1": {
                "security_level": 5,
                "RequiredHDCP": "HDCP_V2_2",
                "RequiredCGMS": "COPY_NEVER",
            },
        }
    elif drm is DrmSystem.PLAYREADY:
        assert facts["playready_licenses"] == [
            {"key_id": AUDIO, "policy": 2000},
            {"key_id": SD, "policy": 2000},
            {
                "key_id": HD,
                "policy": 3000,
                "play": {"UncompressedDigitalVideo": 300, "AnalogVideo": 200},
            },
            {
                "key_id": UHD1,
                "policy": 3000,
                "play": {"CompressedDigitalVideo": 500, "UncompressedDigitalVideo": 300},
            },
        ]
    else:
        assert facts["fairplay"] == {"persistent": False}
