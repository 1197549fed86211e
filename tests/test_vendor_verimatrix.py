"""The Verimatrix adapter with no network: the minted token, framings, MDRM codes."""

from __future__ import annotations

import base64
import json
import uuid
from datetime import UTC, datetime, timedelta

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from plugins.vendors.verimatrix import (
    MDRM_CODES,
    VerimatrixAdapter,
    VerimatrixSettings,
    policy_id,
    read_mdrm,
)
from proxy.errors import ProxyError, Reason
from proxy.model import ClientInfo, DrmSystem, RequestType
from proxy.policy import Policy
from proxy.services import Services
from proxy.testing import FakeClock
from tests.test_vendor_common import (
    DOWNLOAD,
    KID_HD,
    KID_SD,
    RENTAL,
    SPLIT,
    challenge,
    effective,
    make_call,
    policy_gaps,
    response,
)

KEY = ec.generate_private_key(ec.SECP256R1())
PEM = KEY.private_bytes(
    serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
)


def adapter(clock: FakeClock | None = None, **settings) -> VerimatrixAdapter:
    doc = {
        "vendor": "verimatrix",
        "signing_key": "base64:" + base64.b64encode(PEM).decode(),
        "key_id": "sak-1",
        "audience": "license-server",
        **settings,
    }
    return VerimatrixAdapter(
        "vmx", VerimatrixSettings.model_validate(doc), Services(clock=clock or FakeClock())
    )


def minted(request, clock: FakeClock) -> dict:
    """The token from Authorization, verified with the key's public half at the fake time."""
    token = request.headers["Authorization"]
    header = jwt.get_unverified_header(token)
    assert header["alg"] == "ES256"
    assert header["kid"] == "sak-1"
    return jwt.decode(
        token,
        KEY.public_key(),
        algorithms=["ES256"],
        audience="license-server",
        options={"verify_exp": False, "verify_iat": False, "verify_nbf": False},
    )


def test_rental_token_field_by_field():
    clock = FakeClock()
    request = adapter(clock).build_request(make_call(RENTAL, clock, content_id="movie-1"))
    assert request.url == "https://multidrm.vsaas.verimatrixcloud.net/widevine"
    assert not request.headers["Authorization"].startswith("Bearer")
    claims = minted(request, clock)
    now = int(clock.time())
    assert claims["sub"] == "movie-1"
    assert claims["iat"] == now
    assert claims["nbf"] == now
    assert claims["exp"] == now + 60
    uuid.UUID(claims["jti"])
    assert "subscriber" not in claims
    assert "security_policy" not in claims
    assert claims["policy"] == {
        "widevine": {
            "can_play": True,
            "can_persist": False,
            "license_duration": 172800,
            "rental_duration": 172800,
            "playback_duration": 14400,
        }
    }


def test_every_token_is_fresh_within_the_vendor_window():
    clock = FakeClock()
    vmx = adapter(clock, token_lifetime="2m", max_token_age=120)
    first = minted(vmx.build_request(make_call(RENTAL, clock, content_id="m")), clock)
    clock.advance(500)
    second = minted(vmx.build_request(make_call(RENTAL, clock, content_id="m")), clock)
    assert second["iat"] == first["iat"] + 500
    assert second["exp"] - second["iat"] == 120
    assert first["jti"] != second["jti"]


def test_a_lifetime_beyond_120_seconds_is_refused_at_config():
    with pytest.raises(ValueError, match="token_lifetime"):
        adapter(token_lifetime="5m", max_token_age=120)
    with pytest.raises(ValueError, match="max_token_age"):
        adapter(max_token_age=121)


def test_a_lifetime_beyond_90_seconds_needs_max_token_age():
    """Regression: up to 120 s was allowed although an older Verimatrix doc says 90."""
    with pytest.raises(ValueError, match="longer than max_token_age"):
        adapter(token_lifetime="100s")
    assert adapter(token_lifetime="90s").settings.token_lifetime == 90


def test_persistent_download_policy_claim():
    clock = FakeClock()
    claims = minted(adapter(clock).build_request(make_call(DOWNLOAD, clock, content_id="m")), clock)
    assert claims["policy"]["widevine"]["can_persist"] is True
    assert claims["policy"]["widevine"]["can_renew"] is True
    assert claims["policy"]["widevine"]["license_duration"] == 30 * 86400


#: The split without allowed_track_types: Verimatrix licenses every key of the content.
ALL_TRACKS_SPLIT = {k: v for k, v in SPLIT.items() if k != "allowed_track_types"}


def test_split_security_policies_per_track_type():
    clock = FakeClock()
    call = make_call(
        ALL_TRACKS_SPLIT, clock, content_id="m", challenge=challenge(key_ids=(KID_SD, KID_HD))
    )
    claims = minted(adapter(clock).build_request(call), clock)
    policy = effective(ALL_TRACKS_SPLIT)
    sd, hd, uhd = (policy_id(policy, t) for t in ("SD", "HD", "UHD1"))
    assert claims["track_type_policy"] == {"SD": sd, "HD": hd, "UHD1": uhd}
    assert claims["security_policy"][sd] == {
        "widevine": {"security_level": 1, "required_output_protection": {"hdcp": "HDCP_NONE"}}
    }
    assert claims["security_policy"][hd] == {
        "widevine": {
            "security_level": 4,
            "required_output_protection": {"hdcp": "HDCP_V2", "cgms_flags": "COPY_NEVER"},
        }
    }
    assert "default_security_policy" not in claims


def test_playready_objects_are_rendered_only_when_enabled():
    clock = FakeClock()
    info = challenge(DrmSystem.PLAYREADY, payload=b"<soap/>")
    on_adapter = adapter(clock, security_policy_drms=["widevine", "playready"])
    on = minted(
        on_adapter.build_request(
            make_call(ALL_TRACKS_SPLIT, clock, content_id="m", challenge=info)
        ),
        clock,
    )
    hd = on["security_policy"][on["track_type_policy"]["HD"]]
    assert hd == {"playready": {"min_security_level": 3000, "compressed_digital_video_opl": 500}}


def test_playready_rules_without_playready_objects_are_refused_not_dropped():
    """Regression: PlayReady and FairPlay rules were left out of the token silently."""
    info = challenge(DrmSystem.PLAYREADY, payload=b"<soap/>")
    call = make_call(ALL_TRACKS_SPLIT, content_id="m", challenge=info)
    with pytest.raises(ProxyError) as caught:
        adapter().build_request(call)
    assert caught.value.reason is Reason.UPSTREAM_REJECTED
    assert caught.value.metadata["vendor_code"] == "POLICY_NOT_RENDERABLE"
    assert caught.value.metadata["policy_fields"] == (
        "tracks.SD.playready_min_security_level,tracks.HD.playready_min_security_level,"
        "tracks.HD.playready_output_protection"
    )
    gaps = policy_gaps(adapter(), Policy.model_validate(ALL_TRACKS_SPLIT), DrmSystem.FAIRPLAY)
    assert {(g.field, g.error) for g in gaps} == {
        ("tracks.HD.fairplay_hdcp", True),
        ("tracks.HD.fairplay_allow_airplay", True),
    }


def test_allowed_track_types_can_never_be_rendered():
    """Regression: the UHD key was licensed (and given a track_type_policy) although the
    policy allows only audio, SD and HD."""
    gaps = policy_gaps(adapter(), Policy.model_validate(SPLIT), DrmSystem.WIDEVINE)
    assert [(g.field, g.error) for g in gaps] == [("allowed_track_types", True)]
    with pytest.raises(ProxyError) as caught:
        adapter().build_request(make_call(SPLIT, content_id="m"))
    assert caught.value.metadata["policy_fields"] == "allowed_track_types"


def test_a_window_that_has_not_opened_or_has_closed_is_not_entitled():
    """Regression: license.start and expiry never reached the token."""
    clock = FakeClock()
    now = datetime.fromtimestamp(clock.time(), UTC)
    later = {**RENTAL, "license": {**RENTAL["license"], "start": (now + timedelta(hours=1))}}
    with pytest.raises(ProxyError) as caught:
        adapter(clock).build_request(make_call(later, clock, content_id="m"))
    assert caught.value.reason is Reason.NOT_ENTITLED
    assert caught.value.metadata == {"license_window": "not_started"}
    over = {**RENTAL, "license": {**RENTAL["license"], "expiry": now}}
    with pytest.raises(ProxyError) as caught:
        adapter(clock).build_request(make_call(over, clock, content_id="m"))
    assert caught.value.metadata == {"license_window": "closed"}


def test_the_license_duration_is_capped_by_the_time_left():
    clock = FakeClock()
    expiry = datetime.fromtimestamp(clock.time() + 3600, UTC)
    policy = {**RENTAL, "license": {**RENTAL["license"], "expiry": expiry}}
    claims = minted(adapter(clock).build_request(make_call(policy, clock, content_id="m")), clock)
    assert claims["policy"]["widevine"]["license_duration"] == 3600
    assert claims["policy"]["widevine"]["rental_duration"] == 3600
    assert claims["policy"]["widevine"]["playback_duration"] == 14400


def test_subscriber_device_bearer_and_issuer_when_configured():
    clock = FakeClock()
    vmx = adapter(
        clock,
        send_subscriber=True,
        send_device=True,
        authorization="bearer",
        issuer="me",
        payload_version=1,
    )
    call = make_call(RENTAL, clock, content_id="m", client=ClientInfo(device_id="dev-9"))
    request = vmx.build_request(call)
    assert request.headers["Authorization"].startswith("Bearer ")
    request.headers["Authorization"] = request.headers["Authorization"][7:]
    claims = minted(request, clock)
    assert (claims["subscriber"], claims["device"], claims["iss"], claims["ver"]) == (
        "alice",
        "dev-9",
        "me",
        1,
    )


def test_fairplay_is_json_spc_in_and_json_ckc_out():
    clock = FakeClock()
    info = challenge(DrmSystem.FAIRPLAY, payload=b"\x00\x00\x00\x01spc-bytes")
    call = make_call(RENTAL, clock, content_id="skd://movie-1?iv=00", challenge=info)
    request = adapter(clock).build_request(call)
    assert request.headers["Content-Type"] == "application/json"
    assert base64.b64decode(json.loads(request.body)["spc"]) == info.payload
    assert minted(request, clock)["sub"] == "movie-1"
    ckc = base64.urlsafe_b64encode(b"ckc-bytes").decode().rstrip("=")
    result = adapter(clock).parse_response(call, response(200, json.dumps({"ckc": ckc}).encode()))
    assert result.license == b"ckc-bytes"


def test_missing_content_id_is_request_invalid_but_a_certificate_request_goes():
    with pytest.raises(ProxyError) as caught:
        adapter().build_request(make_call(RENTAL))
    assert caught.value.reason is Reason.REQUEST_INVALID
    info = challenge(key_ids=(), payload=b"\x08\x04", request_type=RequestType.SERVICE_CERTIFICATE)
    clock = FakeClock()
    request = adapter(clock).build_request(make_call(RENTAL, clock, challenge=info))
    assert minted(request, clock)["sub"] == "service-certificate"


@pytest.mark.parametrize(
    ("body", "status", "reason", "code"),
    [
        (
            b'{"code":"MDRM-508","message":"Token expired"}',
            401,
            Reason.UPSTREAM_REJECTED,
            "MDRM-508",
        ),
        (
            b'{"error":{"errorCode":"MDRM-503","message":"aud"}}',
            403,
            Reason.UPSTREAM_REJECTED,
            "MDRM-503",
        ),
        (b"MDRM-1011 key not found", 404, Reason.UPSTREAM_REJECTED, "MDRM-1011"),
        (b'{"status":"MDRM-1015"}', 503, Reason.UPSTREAM_UNAVAILABLE, "MDRM-1015"),
        (b'{"code":"MDRM-500"}', 500, Reason.UPSTREAM_UNAVAILABLE, "MDRM-500"),
        (b'{"code":"MDRM-9999"}', 502, Reason.UPSTREAM_UNAVAILABLE, "MDRM-9999"),
        (b"<html>bad gateway</html>", 502, Reason.UPSTREAM_UNAVAILABLE, None),
        (b"", 401, Reason.UPSTREAM_REJECTED, None),
    ],
)
def test_mdrm_errors_map_through_the_table(body, status, reason, code):
    with pytest.raises(ProxyError) as caught:
        adapter().parse_response(
            make_call(RENTAL, content_id="m"), response(status, body, **{"Retry-After": "3"})
        )
    assert caught.value.reason is reason
    assert caught.value.metadata.get("vendor_code") == code
    assert caught.value.metadata["vendor_status"] == str(status)


def test_the_mdrm_table_covers_every_documented_code():
    documented = {*range(500, 512), 717, *range(1000, 1016), 1110}
    assert set(MDRM_CODES) == documented


def test_read_mdrm_is_tolerant():
    assert read_mdrm(b'{"message":"x","code":"mdrm_1004"}') == ("MDRM-1004", "x")
    assert read_mdrm(b"\xff\xfe garbage") == (None, None)


#: A .NET exception dump as a failing server might answer it.
STACK_TRACE = (
    "System.NullReferenceException: Object reference not set to an instance of an object.\r\n"
    "   at Vmx.License.WidevineHandler.Issue(Request r) in C:\\build\\src\\WidevineHandler.cs:"
    "line 212\r\n   at Vmx.Api.Controllers.LicenseController.Post()"
)


@pytest.mark.parametrize(
    "body",
    [
        STACK_TRACE.encode(),
        b"MDRM-500 " + STACK_TRACE.encode(),
        json.dumps({"code": "MDRM-500", "message": STACK_TRACE}).encode(),
        b"<!DOCTYPE html><html><body>Server Error in '/' Application.</body></html>",
    ],
)
def test_a_stack_trace_never_reaches_the_caller_but_reaches_the_log(body, caplog):
    """Regression: free text (a stack trace) was passed to callers as vendor_message."""
    caplog.set_level("INFO", logger="plugins.vendors")
    with pytest.raises(ProxyError) as caught:
        adapter().parse_response(make_call(RENTAL, content_id="m"), response(500, body))
    assert caught.value.reason is Reason.UPSTREAM_UNAVAILABLE
    assert "vendor_message" not in caught.value.metadata
    assert set(caught.value.metadata) <= {"vendor", "vendor_status", "vendor_code"}
    assert "verimatrix answered HTTP 500" in caplog.text


def test_a_short_json_message_is_passed_on():
    body = b'{"code":"MDRM-508","message":"Token expired"}'
    with pytest.raises(ProxyError) as caught:
        adapter().parse_response(make_call(RENTAL, content_id="m"), response(401, body))
    assert caught.value.metadata["vendor_message"] == "Token expired"


def test_a_key_that_does_not_suit_the_algorithm_is_refused():
    rsa_pem = rsa.generate_private_key(public_exponent=65537, key_size=2048).private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    with pytest.raises(ValueError, match="does not suit"):
        adapter(signing_key="base64:" + base64.b64encode(rsa_pem).decode())
    with pytest.raises(ValueError, match="not an unencrypted PEM"):
        adapter(signing_key="hex:00")
