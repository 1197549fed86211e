"""The DoveRunner (PallyCon) adapter: the encrypted policy v2 and the hashed license token it
mints, each DRM's framing, the answers and errors it reads (no network); then through the
proxy to its emulator."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import logging
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import grpc
import pytest

from plugins.vendors.doverunner import DoveRunnerAdapter, DoveRunnerSettings
from plugins.vendors.doverunner.errors import ERROR_CODES
from plugins.vendors.doverunner.policy import track_set
from plugins.vendors.doverunner.token import (
    decrypt_policy,
    encode_token,
    encrypt_policy,
    license_token,
    token_hash,
)
from proxy.builder import build_pipeline
from proxy.challenge import samples
from proxy.clock import Clock
from proxy.errors import ConfigError, ProxyError, Reason
from proxy.model import DrmSystem, Principal, RequestType
from proxy.policy import Policy, TrackType
from proxy.services import Services
from proxy.testing import FakeClock, proxy_config
from proxy.testing.emulator import license_facts, serving
from tests.test_vendor_common import (
    DOWNLOAD,
    KID_HD,
    RENTAL,
    SPLIT,
    challenge,
    make_call,
    policy_gaps,
    response,
)
from tests.test_vendor_integration import (
    challenge_for,
    grpc_license,
    http_license,
    playready_challenge,
    widevine_challenge,
)

VECTOR = json.loads(
    (Path(__file__).parent / "data" / "doverunner" / "license_token_tutorial.json").read_text()
)
SITE_KEY = "A" * 16 + "b" * 16
ACCESS_KEY = "0123456789ABCDEFGHIJKLMNOPQRSTUV"


def adapter(clock: Clock | None = None, **settings: Any) -> DoveRunnerAdapter:
    doc = {
        "vendor": "doverunner",
        "site_id": "TEST",
        "site_key": SITE_KEY,
        "access_key": ACCESS_KEY,
        **settings,
    }
    return DoveRunnerAdapter(
        "dr", DoveRunnerSettings.model_validate(doc), Services(clock=clock or FakeClock())
    )


def token_of(request: Any, site_key: str = SITE_KEY) -> dict[str, Any]:
    """The license token, its hash checked and its policy decrypted."""
    value = request.headers["pallycon-customdata-v2"]
    token = json.loads(base64.b64decode(value, validate=True))
    text = ACCESS_KEY + "".join(
        token[n] for n in ("drm_type", "site_id", "user_id", "cid", "policy", "timestamp")
    )
    assert token["hash"] == base64.b64encode(hashlib.sha256(text.encode()).digest()).decode()
    return {**token, "policy": json.loads(decrypt_policy(token["policy"], site_key.encode()))}


# -- the test vector (VENDOR_FACTS 10.9), bit for bit --------------------------------------


def test_the_tutorial_vector_bit_for_bit():
    ciphertext = encrypt_policy(VECTOR["policy_plaintext"].encode(), VECTOR["site_key"].encode())
    assert ciphertext == VECTOR["encrypted_policy"]
    assert (
        decrypt_policy(ciphertext, VECTOR["site_key"].encode()).decode()
        == (VECTOR["policy_plaintext"])
    )
    fields = [VECTOR[n] for n in ("drm_type", "site_id", "user_id", "cid")]
    assert (
        token_hash(VECTOR["access_key"], *fields, ciphertext, VECTOR["timestamp"])
        == (VECTOR["hash"])
    )
    token = license_token(
        access_key=VECTOR["access_key"],
        drm_type=VECTOR["drm_type"],
        site_id=VECTOR["site_id"],
        user_id=VECTOR["user_id"],
        cid=VECTOR["cid"],
        policy=ciphertext,
        stamp=VECTOR["timestamp"],
        policy_field="token",
    )
    assert encode_token(token) == VECTOR["pallycon-customdata-v2"]
    assert VECTOR["iv"] == "0123456789abcdef"


def test_the_adapter_signs_and_encrypts_as_the_vector_does():
    """Same keys, user, content and instant: the adapter's hash is the vector's recipe over
    its own (v2) policy, and its policy decrypts with the site key's text."""
    clock = FakeClock(start=1563353824)  # 2019-07-17T08:57:04Z
    dr = adapter(
        clock,
        site_id=VECTOR["site_id"],
        site_key="base64:" + base64.b64encode(VECTOR["site_key"].encode()).decode(),
        access_key="base64:" + base64.b64encode(VECTOR["access_key"].encode()).decode(),
    )
    principal = Principal(subject="test-user", issuer="t", claims={"sub": "test-user"})
    call = make_call({"name": "v"}, clock, content_id="bigbuckbunny", principal=principal)
    value = dr.build_request(call).headers["pallycon-customdata-v2"]
    token = json.loads(base64.b64decode(value))
    assert list(token) == [
        "drm_type",
        "site_id",
        "user_id",
        "cid",
        "policy",
        "response_format",
        "key_rotation",
        "timestamp",
        "hash",
    ]
    assert (token["drm_type"], token["site_id"], token["user_id"], token["cid"]) == (
        "Widevine",
        "TUTO",
        "test-user",
        "bigbuckbunny",
    )
    assert token["timestamp"] == VECTOR["timestamp"]
    fields = [token[n] for n in ("drm_type", "site_id", "user_id", "cid", "policy", "timestamp")]
    assert token["hash"] == token_hash(VECTOR["access_key"], *fields)
    plaintext = decrypt_policy(token["policy"], VECTOR["site_key"].encode())
    assert json.loads(plaintext) == {"policy_version": 2}


# -- what the policy says -----------------------------------------------------------------


def test_rental_streaming_policy_folds_the_shortest_limit_into_the_license_duration():
    clock = FakeClock()
    call = make_call(RENTAL, clock, content_id="movie-1")
    request = adapter(clock).build_request(call)
    assert request.url == "https://drm-license.doverunner.com/ri/licenseManager.do"
    assert request.headers["Content-Type"] == "application/octet-stream"
    assert request.body == call.challenge.payload
    token = token_of(request)
    assert token["policy"] == {
        "policy_version": 2,
        "playback_policy": {"persistent": False, "license_duration": 14400},
    }
    assert (token["response_format"], token["key_rotation"]) == ("json", False)
    assert (token["user_id"], token["cid"], token["site_id"]) == ("alice", "movie-1", "TEST")
    assert token["timestamp"] == "2027-01-15T08:00:00Z"


def test_a_persistent_download_keeps_its_offline_durations():
    token = token_of(adapter().build_request(make_call(DOWNLOAD, content_id="m")))
    assert token["policy"]["playback_policy"] == {
        "persistent": True,
        "license_duration": 2592000,
        "playback_duration": 172800,
    }
    persistent_rental = {**RENTAL, "license": {**RENTAL["license"], "persistent": True}}
    token = token_of(adapter().build_request(make_call(persistent_rental, content_id="m")))
    assert token["policy"]["playback_policy"] == {
        "persistent": True,
        "license_duration": 172800,
        "rental_duration": 172800,
        "playback_duration": 14400,
    }


def test_the_split_for_widevine_names_the_track_set_and_a_spec_per_track():
    token = token_of(adapter().build_request(make_call(SPLIT, content_id="m")))
    assert token["policy"]["playback_policy"] == {"allowed_track_types": "SD_HD"}
    assert token["policy"]["security_policy"] == [
        {
            "track_type": "SD",
            "widevine": {"security_level": 1, "required_hdcp_version": "HDCP_NONE"},
        },
        {
            "track_type": "HD",
            "widevine": {
                "security_level": 4,
                "required_hdcp_version": "HDCP_V2",
                "required_cgms_flags": "COPY_NEVER",
            },
        },
    ]


def test_playready_and_fairplay_objects():
    rules = {
        "name": "pf",
        "tracks": {
            "HD": {
                "playready_min_security_level": 3000,
                "playready_output_protection": {
                    "uncompressed_digital_video": 260,
                    "analog_video": 150,
                    "compressed_digital_audio": 200,
                    "uncompressed_digital_audio": 250,
                },
                "fairplay_hdcp": "TYPE0",
                "fairplay_allow_airplay": False,
                "fairplay_allow_av_adapter": True,
            }
        },
    }
    playready = make_call(
        rules, challenge=challenge(DrmSystem.PLAYREADY, payload=b"<x/>"), content_id="m"
    )
    [entry] = token_of(adapter().build_request(playready))["policy"]["security_policy"]
    assert entry == {
        "track_type": "HD",
        "playready": {
            "security_level": 3000,
            "digital_video_protection_level": 270,  # 260 rounded up to the next level
            "analog_video_protection_level": 150,
            "digital_audio_protection_level": 250,
        },
    }
    fairplay = make_call(
        rules, challenge=challenge(DrmSystem.FAIRPLAY, payload=b"spc"), content_id="skd://m?x"
    )
    token = token_of(adapter().build_request(fairplay))
    assert token["cid"] == "m"
    assert token["policy"]["security_policy"] == [
        {
            "track_type": "HD",
            "fairplay": {"hdcp_enforcement": 0, "allow_airplay": False, "allow_av_adapter": True},
        }
    ]


def test_hdcp_2_3_becomes_the_stricter_no_digital_output():
    policy = {"name": "h", "tracks": {"UHD1": {"hdcp": "V2_3"}}}
    call = make_call(policy, content_id="m")
    [entry] = token_of(adapter().build_request(call))["policy"]["security_policy"]
    assert entry["widevine"] == {"required_hdcp_version": "HDCP_NO_DIGITAL_OUTPUT"}


@pytest.mark.parametrize(
    ("rules", "drm", "field"),
    [
        ({"fairplay_hdcp": "TYPE1_STRICT"}, DrmSystem.FAIRPLAY, "tracks.HD.fairplay_hdcp"),
        (
            {"playready_output_protection": {"analog_video": 300}},
            DrmSystem.PLAYREADY,
            "tracks.HD.playready_output_protection.analog_video",
        ),
    ],
)
def test_a_value_doverunner_has_no_word_for_is_refused_not_dropped(rules, drm, field):
    policy = {"name": "x", "tracks": {"HD": rules}}
    call = make_call(policy, challenge=challenge(drm, payload=b"<x/>"), content_id="m")
    with pytest.raises(ProxyError) as caught:
        adapter().build_request(call)
    assert caught.value.metadata["vendor_code"] == "POLICY_NOT_RENDERABLE"
    assert caught.value.metadata["policy_fields"] == field


@pytest.mark.parametrize(
    ("allowed", "name"),
    [
        ((TrackType.AUDIO, TrackType.SD), "SD_ONLY"),
        ((TrackType.AUDIO, TrackType.SD, TrackType.HD, TrackType.UHD1), "SD_UHD1"),
        (tuple(TrackType), "SD_UHD2"),
        ((TrackType.AUDIO, TrackType.SD, TrackType.UHD1), "SD_ONLY"),  # narrower, never wider
        ((TrackType.SD, TrackType.HD), None),  # every named set lets audio through
        ((TrackType.AUDIO, TrackType.HD), None),  # every named set lets SD through
    ],
)
def test_the_track_set_never_lets_a_track_through_the_policy_leaves_out(allowed, name):
    assert track_set(allowed) == name


def test_a_track_set_it_cant_name_is_refused_per_request():
    policy = {"name": "t", "allowed_track_types": ["SD", "HD"]}
    with pytest.raises(ProxyError) as caught:
        adapter().build_request(make_call(policy, content_id="m"))
    assert caught.value.metadata["policy_fields"] == "allowed_track_types"


def test_what_the_policy_cant_carry_fails_the_start():
    dr = adapter()
    split = Policy.model_validate(SPLIT)
    assert [g for g in policy_gaps(dr, split, DrmSystem.WIDEVINE) if g.error] == []
    errors = {g.field for g in policy_gaps(dr, split, DrmSystem.PLAYREADY) if g.error}
    assert errors == {
        "allowed_track_types",
        "tracks.HD.playready_output_protection.compressed_digital_video",
    }
    errors = {g.field for g in policy_gaps(dr, split, DrmSystem.FAIRPLAY) if g.error}
    assert errors == {"allowed_track_types"}
    every_drm = adapter(allowed_track_types_drms=["widevine", "playready", "fairplay"])
    assert not [g for g in policy_gaps(every_drm, split, DrmSystem.FAIRPLAY) if g.error]
    renewing = Policy.model_validate(
        {"name": "r", "license": {"renewal": {"enabled": True, "recovery_window": "1h"}}}
    )
    [gap] = [g for g in policy_gaps(dr, renewing, DrmSystem.WIDEVINE) if g.error]
    assert gap.field == "license.renewal.recovery_window"


def test_the_pipeline_refuses_such_a_policy_at_start_with_its_key_path(vendor_sandbox):
    config = proxy_config()
    config["backends"]["dr"] = vendor_sandbox.vendors["doverunner"].backend("http://127.0.0.1:9")
    config["policies"].append({**SPLIT, "backends": ["dr"]})
    with pytest.raises(ConfigError) as raised:
        build_pipeline(config)
    errors = dict(raised.value.errors)
    path = "policies[1].tracks.HD.playready_output_protection.compressed_digital_video"
    assert "backend 'dr' (doverunner) for playready can't render this" in errors[path]
    assert "allowed_track_types_drms" in errors["policies[1].allowed_track_types"]


def test_a_keys_own_rules_tighten_its_track():
    call = make_call({"name": "k", "tracks": {"HD": {"widevine_security_level": 3}}})
    call.policy.key_rules[KID_HD] = call.policy.rules_for_key(KID_HD).model_copy(
        update={"widevine_security_level": 5}
    )
    call.ctx.request.content_id = "m"
    [entry] = token_of(adapter().build_request(call))["policy"]["security_policy"]
    assert entry == {"track_type": "HD", "widevine": {"security_level": 5}}


def test_no_subject_is_licensetoken_and_no_content_id_is_request_invalid():
    nobody = Principal(subject="", issuer="t", claims={})
    token = token_of(adapter().build_request(make_call(RENTAL, content_id="m", principal=nobody)))
    assert token["user_id"] == "LICENSETOKEN"
    with pytest.raises(ProxyError) as caught:
        adapter().build_request(make_call(RENTAL))
    assert caught.value.reason is Reason.REQUEST_INVALID
    with pytest.raises(ProxyError) as caught:
        adapter().build_request(make_call(RENTAL, content_id="x" * 201))
    assert caught.value.reason is Reason.REQUEST_INVALID


def test_a_service_certificate_request_carries_the_configured_cid():
    call = make_call(
        RENTAL, challenge=challenge(key_ids=(), request_type=RequestType.SERVICE_CERTIFICATE)
    )
    token = token_of(adapter(service_certificate_content_id="cert").build_request(call))
    assert token["cid"] == "cert" and token["policy"] == {"policy_version": 2}


def test_fairplay_goes_as_a_percent_encoded_spc_form_alone():
    spc = bytes([0xFB, 0xFF, 0xFE]) * 40
    call = make_call(
        RENTAL, challenge=challenge(DrmSystem.FAIRPLAY, payload=spc), content_id="skd://asset-7"
    )
    request = adapter().build_request(call)
    assert request.headers["Content-Type"] == "application/x-www-form-urlencoded"
    text = request.body.decode()
    assert text.startswith("spc=") and "+" not in text and "/" not in text and "&" not in text
    assert base64.b64decode(parse_qs(text)["spc"][0]) == spc
    token = token_of(request)
    assert (token["drm_type"], token["cid"]) == ("FairPlay", "asset-7")


def test_the_token_may_travel_in_the_query_and_the_format_be_original():
    dr = adapter(custom_data_in="query", response_format="original", key_rotation=True)
    request = dr.build_request(make_call(RENTAL, content_id="m"))
    assert "pallycon-customdata-v2" not in request.headers
    [value] = parse_qs(urlsplit(request.url).query)["pallycon-customdata-v2"]
    token = json.loads(base64.b64decode(value))
    assert (token["response_format"], token["key_rotation"]) == ("original", True)


def test_keys_that_are_not_32_characters_fail_at_start_without_their_value():
    with pytest.raises(ValueError) as caught:
        adapter(site_key="short-key")
    assert "site_key" in str(caught.value) and "short-key" not in str(caught.value)


# -- the answers -------------------------------------------------------------------------


SOAP = b"<soap:Envelope><AcquireLicenseResponse/></soap:Envelope>"


@pytest.mark.parametrize(
    ("drm", "license_text", "expected"),
    [
        (DrmSystem.WIDEVINE, "08021200", b"\x08\x02\x12\x00"),
        (DrmSystem.PLAYREADY, SOAP.decode(), SOAP),
        (DrmSystem.PLAYREADY, base64.b64encode(SOAP).decode(), SOAP),
        (DrmSystem.FAIRPLAY, base64.b64encode(b"CKC\x00").decode(), b"CKC\x00"),
    ],
)
def test_json_answers_give_the_cdm_its_bytes_and_keep_the_device_id(drm, license_text, expected):
    body = json.dumps(
        {"license": license_text, "device_info": {"device_id": "a1b2c3d4e5f6a7b8c9d0"}}
    ).encode()
    call = make_call(RENTAL, challenge=challenge(drm, payload=b"<x/>"), content_id="m")
    result = adapter().parse_response(call, response(200, body))
    assert result.license == expected
    assert result.vendor_metadata == {
        "doverunner.device_id": "a1b2c3d4e5f6a7b8c9d0",
        "device.id": "a1b2c3d4e5f6a7b8c9d0",
    }


@pytest.mark.parametrize(
    ("drm", "body", "expected"),
    [
        (DrmSystem.WIDEVINE, b"\x08\x02\x12\x00", b"\x08\x02\x12\x00"),
        (DrmSystem.PLAYREADY, SOAP, SOAP),
        (DrmSystem.FAIRPLAY, base64.b64encode(b"CKC\x01") + b"\n", b"CKC\x01"),
    ],
)
def test_original_answers(drm, body, expected):
    call = make_call(RENTAL, challenge=challenge(drm, payload=b"<x/>"), content_id="m")
    result = adapter(response_format="original").parse_response(call, response(200, body))
    assert result.license == expected and result.vendor_metadata == {}


@pytest.mark.parametrize(
    "body",
    [
        b'{"license": "not hex"}',
        b'{"device_info": {}}',
        b"<html>maintenance</html>",
        b'{"license": ""}',
    ],
)
def test_json_answers_that_are_no_license_are_bad_responses(body):
    with pytest.raises(ProxyError) as caught:
        adapter().parse_response(make_call(RENTAL), response(200, body))
    assert caught.value.reason is Reason.UPSTREAM_BAD_RESPONSE


@pytest.mark.parametrize("code", sorted(ERROR_CODES))
def test_every_documented_error_code_is_mapped_at_http_200(code):
    reason, category = ERROR_CODES[code]
    body = json.dumps({"errorCode": code, "message": "Token is expired."}).encode()
    with pytest.raises(ProxyError) as caught:
        adapter().parse_response(make_call(RENTAL), response(200, body))
    assert caught.value.reason is reason
    assert caught.value.metadata["vendor"] == "doverunner"
    assert caught.value.metadata["vendor_code"] == code
    assert caught.value.metadata["vendor_category"] == category
    assert caught.value.metadata["vendor_message"] == "Token is expired."


def test_a_callback_error_shows_its_nested_message():
    nested = json.dumps({"ERROR": "E17", "MESSAGE": "No entitlement for this user"})
    body = json.dumps({"errorCode": "8002", "message": nested}).encode()
    with pytest.raises(ProxyError) as caught:
        adapter().parse_response(make_call(RENTAL), response(200, body))
    assert caught.value.metadata["vendor_message"] == "No entitlement for this user"


@pytest.mark.parametrize(
    ("status", "body", "reason", "code"),
    [
        (500, b'{"errorCode": "4242", "message": "x"}', Reason.UPSTREAM_UNAVAILABLE, "4242"),
        (200, b'{"errorCode": "4242", "message": "x"}', Reason.UPSTREAM_REJECTED, "4242"),
        (403, b'{"errorCode": "7019", "message": "x"}', Reason.UPSTREAM_REJECTED, "7019"),
        (502, b"Bad Gateway", Reason.UPSTREAM_UNAVAILABLE, None),
        (404, b"", Reason.UPSTREAM_REJECTED, None),
    ],
)
def test_error_bodies_at_any_status(status, body, reason, code):
    with pytest.raises(ProxyError) as caught:
        adapter().parse_response(make_call(RENTAL), response(status, body))
    assert caught.value.reason is reason
    assert caught.value.metadata.get("vendor_code") == code


# -- through the proxy to the emulator -----------------------------------------------------


@pytest.fixture
async def dr_proxy(vendor_sandbox, proxy_factory):
    config = vendor_sandbox.config(proxy_config())
    config["backends"]["doverunner"]["timeout"] = "1s"
    return await proxy_factory(config)


def dr_token(dev_token: Any, vendor: str = "doverunner") -> str:
    return dev_token({"sub": "alice", "vendor": vendor})


@pytest.mark.parametrize("response_format", ["json", "original"])
@pytest.mark.parametrize("drm", [DrmSystem.WIDEVINE, DrmSystem.PLAYREADY, DrmSystem.FAIRPLAY])
async def test_every_drm_over_both_transports_with_zero_format_violations(
    drm, response_format, vendor_sandbox, proxy_factory, dev_token, http
):
    config = vendor_sandbox.config(proxy_config())
    config["backends"]["doverunner"]["response_format"] = response_format
    proxy = await proxy_factory(config)
    emulator = vendor_sandbox["doverunner"]
    body, content_id = challenge_for(drm)
    reply, info, code = await grpc_license(
        proxy, dr_token(dev_token), drm.value, body, content_id=content_id
    )
    assert code is grpc.StatusCode.OK, info
    facts = license_facts(drm.value, reply.license)
    assert facts["vendor"] == "doverunner" and facts["user"] == "alice"
    assert facts["policy"]["playback_policy"] == {"persistent": False, "license_duration": 14400}
    if response_format == "json":
        assert reply.vendor_metadata["doverunner.device_id"] == "emulated-device-7f3a"
    else:
        assert "doverunner.device_id" not in reply.vendor_metadata
    status, _, license_bytes, problem = await http_license(
        proxy, http, dr_token(dev_token), drm.value, body, content_id=content_id
    )
    assert status == 200, problem
    assert license_facts(drm.value, license_bytes)["vendor"] == "doverunner"
    assert emulator.state.violations == []
    assert len(emulator.state.received) == 2


async def test_the_sandbox_policys_track_rules_reach_doverunner(
    vendor_sandbox, dr_proxy, dev_token
):
    reply, info, _ = await grpc_license(
        dr_proxy, dr_token(dev_token), "widevine", widevine_challenge()
    )
    assert info is None
    entries = license_facts("widevine", reply.license)["policy"]["security_policy"]
    assert {
        "track_type": "HD",
        "widevine": {"security_level": 3, "required_hdcp_version": "HDCP_V1"},
    } in entries
    reply, _, _ = await grpc_license(
        dr_proxy, dr_token(dev_token), "playready", playready_challenge(), content_id="m"
    )
    entries = license_facts("playready", reply.license)["policy"]["security_policy"]
    assert entries == [{"track_type": "HD", "playready": {"security_level": 3000}}]


async def test_certificate_and_renewal_go_through_without_violations(
    vendor_sandbox, dr_proxy, dev_token
):
    token = dr_token(dev_token)
    _, info, code = await grpc_license(dr_proxy, token, "widevine", b"\x08\x04")
    assert code is grpc.StatusCode.OK, info
    assert vendor_sandbox["doverunner"].state.last.decoded["cid"] == "service-certificate"
    renewal = samples.widevine_license_request(form="existing_license", request_type=2)
    reply, info, code = await grpc_license(dr_proxy, token, "widevine", renewal, content_id="m")
    assert code is grpc.StatusCode.OK, info
    assert license_facts("widevine", reply.license)["request_type"] == "renewal"
    assert vendor_sandbox["doverunner"].state.violations == []


@pytest.mark.parametrize(
    ("mode", "options", "reason", "status"),
    [
        ("slow", {"delay": 5}, "UPSTREAM_TIMEOUT", grpc.StatusCode.DEADLINE_EXCEEDED),
        ("error", {"status": 503}, "UPSTREAM_UNAVAILABLE", grpc.StatusCode.UNAVAILABLE),
        ("reset", {}, "UPSTREAM_UNAVAILABLE", grpc.StatusCode.UNAVAILABLE),
        ("garbage", {}, "UPSTREAM_BAD_RESPONSE", grpc.StatusCode.UNAVAILABLE),
        ("drip", {"delay": 0.05}, "UPSTREAM_TIMEOUT", grpc.StatusCode.DEADLINE_EXCEEDED),
        ("reject", {}, "UPSTREAM_REJECTED", grpc.StatusCode.FAILED_PRECONDITION),
    ],
)
@pytest.mark.parametrize("drm", [DrmSystem.WIDEVINE, DrmSystem.PLAYREADY])
async def test_every_fault_is_typed_within_the_deadline(
    drm, mode, options, reason, status, vendor_sandbox, dr_proxy, dev_token
):
    """The backend's timeout is 1 s: slow and trickling answers are cut off by it."""
    vendor_sandbox["doverunner"].fault.set(mode, **options)
    body, content_id = challenge_for(drm)
    _, info, code = await grpc_license(
        dr_proxy, dr_token(dev_token), drm.value, body, content_id=content_id, timeout=30
    )
    assert code is status
    assert info.reason == reason
    assert info.metadata["backend"] == "doverunner"


async def test_a_refusal_reaches_the_caller_with_doverunners_code(
    vendor_sandbox, dr_proxy, dev_token, http
):
    vendor_sandbox["doverunner"].fault.set("reject", code="7110")
    _, info, code = await grpc_license(
        dr_proxy, dr_token(dev_token), "widevine", widevine_challenge()
    )
    assert code is grpc.StatusCode.FAILED_PRECONDITION
    assert info.metadata["vendor_code"] == "7110"
    assert info.metadata["vendor_category"] == "device_revoked"
    assert info.metadata["vendor_status"] == "200"
    status, _, _, problem = await http_license(
        dr_proxy,
        http,
        dr_token(dev_token),
        "fairplay",
        *challenge_for(DrmSystem.FAIRPLAY)[:1],
        content_id="movie-1",
    )
    assert status == 403
    assert problem["metadata"]["vendor_code"] == "7110"


def failover_config(sandbox: Any, first: str, second: str) -> dict[str, Any]:
    config = sandbox.config(proxy_config())
    config["policies"].append(
        {
            "name": "failover",
            "priority": 20,
            "match": {"claims": {"vendor": "failover"}},
            "backends": [first, second],
            "license": {"can_play": True, "persistent": False, "license_duration": "1d"},
        }
    )
    return config


async def test_an_outage_fails_over_between_doverunner_and_drmtoday(
    vendor_sandbox, proxy_factory, dev_token
):
    proxy = await proxy_factory(failover_config(vendor_sandbox, "doverunner", "drmtoday"))
    vendor_sandbox["doverunner"].fault.set("garbage")
    reply, info, code = await grpc_license(
        proxy, dr_token(dev_token, "failover"), "widevine", widevine_challenge()
    )
    assert code is grpc.StatusCode.OK, info
    assert reply.backend == "drmtoday"
    vendor_sandbox["doverunner"].fault.clear()
    vendor_sandbox["drmtoday"].fault.set("error", status=503)
    proxy = await proxy_factory(failover_config(vendor_sandbox, "drmtoday", "doverunner"))
    reply, info, code = await grpc_license(
        proxy, dr_token(dev_token, "failover"), "widevine", widevine_challenge()
    )
    assert code is grpc.StatusCode.OK, info
    assert reply.backend == "doverunner"
    assert license_facts("widevine", reply.license)["policy"]["playback_policy"] == {
        "persistent": False,
        "license_duration": 86400,
    }
    assert vendor_sandbox["doverunner"].state.violations == []
    assert vendor_sandbox["drmtoday"].state.violations == []


async def test_a_wrong_access_key_is_refused_with_the_hash_code(
    vendor_sandbox, proxy_factory, dev_token
):
    config = vendor_sandbox.config(proxy_config())
    config["backends"]["doverunner"]["access_key"] = (
        "base64:" + base64.b64encode(b"x" * 32).decode()
    )
    proxy = await proxy_factory(config)
    _, info, _ = await grpc_license(proxy, dr_token(dev_token), "widevine", widevine_challenge())
    assert info.reason == "UPSTREAM_REJECTED"
    assert info.metadata["vendor_code"] == "7019"
    assert vendor_sandbox["doverunner"].state.violations == [
        "POST /ri/licenseManager.do: hash mismatch"
    ]


async def test_no_key_or_token_reaches_a_log_or_an_answer(
    vendor_sandbox, dr_proxy, dev_token, http, caplog
):
    caplog.set_level(logging.DEBUG)
    site = vendor_sandbox.vendors["doverunner"]
    token = dr_token(dev_token)
    answers: list[str] = []
    statuses: list[int] = []
    for mode in ("none", "reject", "error", "garbage"):
        vendor_sandbox["doverunner"].fault.set(mode, status=500)
        reply, info, _ = await grpc_license(
            dr_proxy, token, "playready", playready_challenge(), content_id="m"
        )
        answers.append(str(reply) + str(info))
        status, _, body, _ = await http_license(
            dr_proxy, http, token, "widevine", widevine_challenge()
        )
        answers.append(body.decode("latin-1"))
        statuses.append(status)
    assert statuses == [200, 403, 502, 502]
    minted = [
        r.headers["pallycon-customdata-v2"] for r in vendor_sandbox["doverunner"].state.received
    ]
    assert minted
    policies = [json.loads(base64.b64decode(m))["policy"] for m in minted]
    seen = caplog.text + "".join(answers)
    for needle in (site.site_key, site.access_key, token, *minted, *policies):
        assert needle not in seen


# -- the emulator holds the adapter to the documented format -----------------------------


@pytest.mark.parametrize(
    ("change", "code"),
    [
        ({"drop": "pallycon-customdata-v2"}, "7010"),
        ({"headers": {"Content-Type": "text/xml"}}, "9001"),
        ({"token": {"drm_type": "widevine"}}, "7018"),
        ({"token": {"site_id": "ELSE"}}, "1003"),
        ({"token": {"hash": "AAAA"}}, "7019"),
        ({"token": {"timestamp": "2001-01-01T00:00:00Z"}}, "7011"),
        ({"token": {"extra": 1}}, "7013"),
        ({"token": {"response_format": "custom"}}, "9999"),
    ],
)
async def test_the_emulator_refuses_and_records_what_breaks_the_format(change, code, http):
    from plugins.vendors.doverunner import emulator as dr_emulator

    clock = Clock()
    real = challenge(payload=widevine_challenge())
    request = adapter(clock).build_request(make_call(RENTAL, clock, content_id="m", challenge=real))
    headers = {**request.headers, **change.get("headers", {})}
    if "drop" in change:
        headers.pop(change["drop"])
    if "token" in change:
        token = json.loads(base64.b64decode(headers["pallycon-customdata-v2"]))
        token.update(change["token"])
        headers["pallycon-customdata-v2"] = encode_token(token)
    async with serving(dr_emulator.make_app("TEST", SITE_KEY, ACCESS_KEY)) as running:
        async with http.post(
            running.url + dr_emulator.PATH, data=request.body, headers=headers
        ) as answer:
            assert answer.status == 200  # DoveRunner answers errors at 200
            assert (await answer.json())["errorCode"] == code
        assert len(running.state.violations) == 1


@pytest.mark.parametrize(
    ("policy", "why"),
    [
        ({"policy_version": 1}, "policy_version"),
        ({"policy_version": 2, "playback_policy": {"duration": 5}}, "unknown field"),
        ({"policy_version": 2, "playback_policy": {"playback_duration": 5}}, "persistent"),
        (
            {
                "policy_version": 2,
                "security_policy": [{"track_type": "SD", "widevine": {"security_level": 9}}],
            },
            "security_level",
        ),
        ({"policy_version": 2, "security_policy": [{"track_type": "4K"}]}, "track type"),
    ],
)
def test_the_emulator_checks_the_policy_schema(policy, why):
    from plugins.vendors.doverunner.emulator import Refused, check_policy

    with pytest.raises(Refused, match=why):
        check_policy(policy)


def test_every_setting_is_in_the_docs_section():
    from proxy import UpstreamSettings

    doc = (Path(__file__).parent.parent / "docs" / "vendors.md").read_text(encoding="utf-8")
    section = doc.split("\n## doverunner\n", 1)[1].split("\n## ", 1)[0]
    for name in set(DoveRunnerSettings.model_fields) - set(UpstreamSettings.model_fields):
        assert f"| `{name}` |" in section, name


async def test_the_device_id_reaches_the_decision_log(
    vendor_sandbox, proxy_factory, dev_token, tmp_path
):
    config = vendor_sandbox.config(proxy_config())
    config["audit"] = {"file": str(tmp_path / "decisions.jsonl")}
    proxy = await proxy_factory(config)
    reply, info, _ = await grpc_license(
        proxy, dr_token(dev_token), "widevine", widevine_challenge()
    )
    assert info is None
    assert reply.vendor_metadata["device.id"] == "emulated-device-7f3a"
    assert await asyncio.to_thread(proxy.pipeline.services.audit.flush, 30)
    [record] = [
        json.loads(line) for line in (tmp_path / "decisions.jsonl").read_text().splitlines()
    ]
    assert record["vendor"] == "doverunner"
    assert record["vendor_device"] == {"id": "emulated-device-7f3a"}
