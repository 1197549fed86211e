"""Policies and calls the vendor adapter tests share, and tests of the shared helpers."""

from __future__ import annotations

import base64
import uuid
from typing import Any

import pytest

import proxy
from proxy.adapters import widevine
from proxy.errors import Reason
from proxy.model import ChallengeInfo, DrmSystem, RequestType
from proxy.policy import EffectivePolicy, Hdcp, Policy, TrackRules, TrackType
from proxy.secrets import resolve_secret
from proxy.services import Services
from proxy.testing import FakeClock, vendor_call
from proxy.vendors import UpstreamResponse

KID_SD = uuid.UUID("11111111-2222-3333-4444-555555555501").bytes
KID_HD = uuid.UUID("11111111-2222-3333-4444-555555555502").bytes
KID_UHD = uuid.UUID("11111111-2222-3333-4444-555555555503").bytes
KID_AUDIO = uuid.UUID("11111111-2222-3333-4444-555555555504").bytes
TRACKS = {
    KID_SD: TrackType.SD,
    KID_HD: TrackType.HD,
    KID_UHD: TrackType.UHD1,
    KID_AUDIO: TrackType.AUDIO,
}

#: A 48-hour rental: 4 hours to watch once started, no persistence.
RENTAL = {
    "name": "rental",
    "backends": ["b"],
    "license": {
        "can_play": True,
        "persistent": False,
        "license_duration": "2d",
        "rental_duration": "2d",
        "playback_duration": "4h",
    },
}
#: A persistent download: kept 30 days, 48 hours to finish once started, renewable.
DOWNLOAD = {
    "name": "download",
    "backends": ["b"],
    "license": {
        "can_play": True,
        "persistent": True,
        "license_duration": "30d",
        "playback_duration": "48h",
        "renewal": {"enabled": True, "delay": "1h", "url": "https://renew.example/wv"},
    },
}
#: SD/HD/UHD split: UHD not allowed; SD lenient, HD hardware-backed with HDCP.
SPLIT = {
    "name": "split",
    "backends": ["b"],
    "allowed_track_types": ["AUDIO", "SD", "HD"],
    "license": {"can_play": True},
    "tracks": {
        "SD": {"widevine_security_level": 1, "hdcp": "NONE", "playready_min_security_level": 2000},
        "HD": {
            "widevine_security_level": "HW_SECURE_DECODE",
            "hdcp": "V2",
            "cgms_a": "COPY_NEVER",
            "playready_min_security_level": 3000,
            "playready_output_protection": {"compressed_digital_video": 500},
            "fairplay_hdcp": "TYPE1",
            "fairplay_allow_airplay": False,
        },
        "UHD1": {"widevine_security_level": 5, "hdcp": "V2_2"},
    },
}


def effective(doc: dict[str, Any]) -> EffectivePolicy:
    """The untightened EffectivePolicy of a policy document, with the test key tracks."""
    return EffectivePolicy.from_policy(Policy.model_validate(doc), dict(TRACKS))


def challenge(
    drm: DrmSystem = DrmSystem.WIDEVINE,
    key_ids: tuple[bytes, ...] = (KID_SD, KID_HD),
    payload: bytes = b"\x08\x01\x12\x04test",
    request_type: RequestType = RequestType.NEW,
) -> ChallengeInfo:
    """A ChallengeInfo as an inspector would make it."""
    return ChallengeInfo(drm, request_type, payload, key_ids=key_ids)


def policy_gaps(adapter: Any, policy: Policy, drm: DrmSystem) -> list[proxy.PolicyGap]:
    """What the start-up check finds in ``policy`` for one adapter (its own renderings)."""
    return proxy.config_gaps(policy, drm, adapter.renderings[drm])


def make_call(policy: dict[str, Any], clock: FakeClock | None = None, **kwargs: Any) -> Any:
    """A VendorCall for ``policy`` (Widevine SD+HD challenge unless ``challenge`` is given)."""
    info = kwargs.pop("challenge", None) or challenge()
    services = Services(clock=clock or FakeClock())
    return vendor_call(info, effective(policy), services=services, **kwargs)


def response(
    status: int = 200, body: bytes = b"\x08\x02\x12\x00", **headers: str
) -> UpstreamResponse:
    """An UpstreamResponse as the core hands it to parse_response."""
    return UpstreamResponse(status, {k.replace("_", "-"): v for k, v in headers.items()}, body)


def test_key_material_decodes_text_keys_and_takes_inline_bytes_as_they_are():
    key = bytes(range(32))
    as_text = resolve_secret(base64.b64encode(key).decode())
    assert proxy.key_material(as_text, "k", lengths=(32,)) == key
    inline = resolve_secret("hex:" + key.hex())
    assert proxy.key_material(inline, "k", lengths=(32,)) == key
    hex_text = resolve_secret(key[:16].hex())
    assert proxy.key_material(hex_text, "k", lengths=(16,), encodings=("hex",)) == key[:16]


def test_key_material_error_names_the_reference_never_the_value():
    secret = resolve_secret("c2hvcnQ=")
    with pytest.raises(ValueError) as caught:
        proxy.key_material(secret, "com_key", lengths=(32,))
    assert "com_key" in str(caught.value)
    assert "c2hvcnQ" not in str(caught.value)


def test_scrub_removes_tokens_and_control_characters():
    token = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJhbGljZSJ9.c2lnbmF0dXJlc2lnbmF0dXJl"
    text = proxy.scrub(f"bad token {token}\r\nInjected: header")
    assert token not in text
    assert "\n" not in text
    assert "[redacted]" in text


def test_soap_fault_is_read_and_entities_are_refused():
    fault = (
        b'<s:Envelope xmlns:s="http://schemas.xmlsoap.org/soap/envelope/"><s:Body><s:Fault>'
        b"<faultcode>s:Server</faultcode><faultstring>revoked</faultstring><detail><Exception>"
        b"<StatusCode>0x8004C065</StatusCode></Exception></detail></s:Fault></s:Body></s:Envelope>"
    )
    assert proxy.soap_fault(fault) == {
        "faultcode": "s:Server",
        "faultstring": "revoked",
        "status_code": "0x8004C065",
    }
    bomb = b'<!DOCTYPE x [<!ENTITY a "aaaa">]><Fault><faultstring>&a;</faultstring></Fault>'
    assert proxy.soap_fault(bomb) is None


def test_playready_server_fault_is_an_outage_and_a_refusal_is_not():
    def fault(code: str) -> UpstreamResponse:
        body = f"<Envelope><Body><Fault><faultstring>x</faultstring><StatusCode>{code}</StatusCode></Fault></Body></Envelope>"
        return response(500, body.encode())

    assert (
        proxy.playready_fault_error("v", fault("0x8004C600")).reason is Reason.UPSTREAM_UNAVAILABLE
    )
    refused = proxy.playready_fault_error("v", fault("0x8004C065"))
    assert refused.reason is Reason.UPSTREAM_REJECTED
    assert refused.metadata["vendor_code"] == "0x8004C065"


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        (b"", Reason.UPSTREAM_BAD_RESPONSE),
        (b"<html>", Reason.UPSTREAM_BAD_RESPONSE),
        (b"\x08\x07\x12\x00", Reason.UPSTREAM_BAD_RESPONSE),
        (b"\x08\x03\x12\x00", Reason.UPSTREAM_REJECTED),
    ],
)
def test_widevine_answers_are_checked_for_shape(body, reason):
    with pytest.raises(proxy.ProxyError) as caught:
        proxy.check_license("v", DrmSystem.WIDEVINE, body)
    assert caught.value.reason is reason


def test_widevine_vocabulary_for_a_rental():
    overrides = widevine.policy_overrides(effective(RENTAL).license)
    assert overrides == {
        "can_play": True,
        "can_persist": False,
        "license_duration_seconds": 172800,
        "rental_duration_seconds": 172800,
        "playback_duration_seconds": 14400,
    }


def test_widevine_vocabulary_for_a_download_includes_renewal():
    overrides = widevine.policy_overrides(effective(DOWNLOAD).license)
    assert overrides["can_persist"] is True
    assert overrides["can_renew"] is True
    assert overrides["renewal_server_url"] == "https://renew.example/wv"
    assert overrides["renewal_delay_seconds"] == 3600


def test_widevine_track_selection_for_the_split_lists_every_allowed_track():
    specs = widevine.track_selection(effective(SPLIT))["content_key_specs"]
    assert [s["track_type"] for s in specs] == ["AUDIO", "SD", "HD"]
    hd = specs[2]
    assert hd["security_level"] == 4
    assert hd["required_output_protection"] == {"hdcp": "HDCP_V2", "cgms_flags": "COPY_NEVER"}


def test_widevine_track_selection_short_form_and_default():
    assert widevine.track_selection(effective(RENTAL)) == {}
    sd_hd = {**RENTAL, "allowed_track_types": ["AUDIO", "SD", "HD"]}
    assert widevine.track_selection(effective(sd_hd)) == {"allowed_track_types": "SD_HD"}


def test_without_audio_the_short_form_is_never_used():
    """Widevine's named sets always carry audio: a policy that leaves audio out gets specs."""
    video_only = {**RENTAL, "allowed_track_types": ["SD", "HD"]}
    assert widevine.track_selection(effective(video_only)) == {
        "content_key_specs": [{"track_type": "SD"}, {"track_type": "HD"}]
    }


def test_a_short_form_the_service_does_not_take_becomes_specs():
    uhd = {**RENTAL, "allowed_track_types": ["AUDIO", "SD", "HD", "UHD1"]}
    assert widevine.track_selection(effective(uhd)) == {"allowed_track_types": "SD_UHD1"}
    specs = widevine.track_selection(effective(uhd), ("SD_ONLY", "SD_HD"))
    assert [s["track_type"] for s in specs["content_key_specs"]] == ["AUDIO", "SD", "HD", "UHD1"]


def test_per_key_rules_are_folded_into_their_tracks_specs():
    """Regression: per-key tightening from trusted claims never reached Widevine."""
    policy = effective(SPLIT)
    policy.key_rules[KID_SD] = TrackRules(widevine_security_level=5, hdcp=Hdcp.V2_2)
    specs = {s["track_type"]: s for s in widevine.track_selection(policy)["content_key_specs"]}
    assert specs["SD"]["security_level"] == 5
    assert specs["SD"]["required_output_protection"] == {"hdcp": "HDCP_V2_2"}
    assert specs["HD"]["security_level"] == 4, "other tracks keep their own rules"
    assert specs["AUDIO"] == {"track_type": "AUDIO"}


def test_a_key_of_unknown_track_tightens_every_track():
    policy = effective(SPLIT)
    unknown = bytes(16)
    policy.key_rules[unknown] = TrackRules(hdcp=Hdcp.V2_1)
    specs = widevine.track_selection(policy)["content_key_specs"]
    hdcp = {s["track_type"]: s["required_output_protection"]["hdcp"] for s in specs}
    assert hdcp == {"AUDIO": "HDCP_V2_1", "SD": "HDCP_V2_1", "HD": "HDCP_V2_1"}


def test_an_expired_policy_window_issues_nothing():
    closed = {**RENTAL, "license": {**RENTAL["license"], "expiry": "2020-01-01T00:00:00Z"}}
    with pytest.raises(proxy.ProxyError) as caught:
        proxy.check_window(effective(closed).license, 1_800_000_000)
    assert caught.value.reason is Reason.NOT_ENTITLED


@pytest.mark.parametrize(
    "text",
    [
        "System.Web.Services.Protocols.SoapException: Internal error\n   at X.Y(Byte[] c)",
        'Traceback (most recent call last):\n  File "/srv/app.py", line 3, in <module>',
        "java.lang.IllegalStateException: boom",
        "at com.vendor.License.issue(License.java:42)",
        "<html><body>Bad gateway</body></html>",
        "panic: runtime error: index out of range\ngoroutine 1 [running]:",
    ],
)
def test_vendor_internals_are_never_a_vendor_message(text):
    assert proxy.vendor_message(text) is None


def test_a_vendor_message_is_its_first_line_scrubbed():
    assert proxy.vendor_message("License denied: device revoked.\nmore") == (
        "License denied: device revoked."
    )
    assert proxy.vendor_message("") is None


@pytest.mark.parametrize(
    "secret",
    ["a1b2c3d4e5f6a7b8c9d0e1f2a3b4c5d6", "3q2+7w==", "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJ4In0.c2ln"],
)
def test_scrub_redacts_keys_in_hex_and_padded_base64(secret):
    assert secret not in proxy.scrub(f"bad key {secret} given")


def test_scrub_leaves_ordinary_words_and_codes():
    assert proxy.scrub("status=OK code 0x8004C600 MDRM-1011") == (
        "status=OK code 0x8004C600 MDRM-1011"
    )


def test_a_playready_fault_with_a_stack_trace_keeps_its_code_only():
    fault = (
        b'<s:Envelope xmlns:s="http://schemas.xmlsoap.org/soap/envelope/"><s:Body><s:Fault>'
        b"<faultcode>s:Server</faultcode><faultstring>System.Web.Services.Protocols."
        b"SoapException: Internal error at Microsoft.Media.Drm.LicenseServer.Process(Byte[] "
        b"challenge) in D:\\src\\x.cs:line 9</faultstring><detail><Exception><StatusCode>"
        b"0x8004C600</StatusCode></Exception></detail></s:Fault></s:Body></s:Envelope>"
    )
    error = proxy.playready_fault_error("azure", response(500, fault))
    assert error.metadata == {
        "vendor": "azure",
        "vendor_status": "500",
        "vendor_code": "0x8004C600",
    }
