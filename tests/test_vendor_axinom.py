"""The Axinom adapter with no network: the signed message it builds, the errors it reads."""

from __future__ import annotations

import base64
import uuid
from datetime import UTC, datetime, timedelta

import jwt
import pytest

from plugins.vendors.axinom import AxinomAdapter, AxinomSettings, AxinomVendorPlugin
from proxy.config import ConfigContext, CoreConfig
from proxy.errors import ProxyError, Reason
from proxy.model import ClientInfo, DrmSystem, Principal, RequestType
from proxy.policy import Policy
from proxy.services import Services
from proxy.testing import FakeClock
from proxy.vendors import VendorRegistry
from tests.test_vendor_common import (
    DOWNLOAD,
    KID_AUDIO,
    KID_HD,
    KID_SD,
    KID_UHD,
    RENTAL,
    SPLIT,
    challenge,
    make_call,
    policy_gaps,
    response,
)

COM_KEY = bytes(range(32))
COM_KEY_ID = "12196546-a312-4a4e-ab65-c19bccce1adf"


def adapter(clock: FakeClock | None = None, **settings) -> AxinomAdapter:
    doc = {
        "vendor": "axinom",
        "com_key_id": COM_KEY_ID,
        "com_key": base64.b64encode(COM_KEY).decode(),
        **settings,
    }
    return AxinomAdapter(
        "ax", AxinomSettings.model_validate(doc), Services(clock=clock or FakeClock())
    )


def envelope(request) -> dict:
    """The License Service Message, verified with the base64-decoded communication key."""
    token = request.headers["X-AxDRM-Message"]
    assert jwt.get_unverified_header(token)["alg"] == "HS256"
    return jwt.decode(token, COM_KEY, algorithms=["HS256"])


def test_rental_message_field_by_field():
    clock = FakeClock()
    call = make_call(RENTAL, clock)
    request = adapter(clock).build_request(call)
    assert request.url == "https://drm-widevine-licensing.axprod.net/AcquireLicense"
    assert request.body == call.challenge.payload
    assert request.headers["Content-Type"] == "application/octet-stream"
    doc = envelope(request)
    assert doc["version"] == 1
    assert doc["com_key_id"] == COM_KEY_ID
    uuid.UUID(doc["id"])
    expires = datetime.fromisoformat(doc["expiration_date"])
    assert expires == datetime.fromtimestamp(clock.time() + 60, UTC)
    message = doc["message"]
    assert message["type"] == "entitlement_message"
    assert message["version"] == 2
    assert message["license"] == {
        "duration": 172800,
        "allow_persistence": False,
        "widevine": {"allow_playback": True, "playback_duration": 14400},
        "playready": {"playback_duration": 14400},
        "fairplay": {"playback_duration": 14400},
    }
    assert message["content_keys_source"] == {
        "inline": [{"id": str(uuid.UUID(bytes=KID_SD))}, {"id": str(uuid.UUID(bytes=KID_HD))}]
    }
    assert "content_key_usage_policies" not in message
    assert message["session"] == {"user_id": "alice"}


def test_persistent_download_allows_persistence_and_renewal():
    message = envelope(adapter().build_request(make_call(DOWNLOAD)))["message"]
    assert message["license"]["allow_persistence"] is True
    assert message["license"]["duration"] == 30 * 86400
    widevine = message["license"]["widevine"]
    assert widevine["allow_renewal"] is True
    assert widevine["renewal_delay"] == 3600
    assert widevine["renewal_url"] == "https://renew.example/wv"


def test_sd_hd_uhd_split_names_a_usage_policy_per_track_and_leaves_uhd_out():
    keys = (KID_AUDIO, KID_SD, KID_HD, KID_UHD)
    call = make_call(SPLIT, challenge=challenge(key_ids=keys))
    message = envelope(adapter().build_request(call))["message"]
    inline = message["content_keys_source"]["inline"]
    assert inline == [
        {"id": str(uuid.UUID(bytes=KID_AUDIO))},
        {"id": str(uuid.UUID(bytes=KID_SD)), "usage_policy": "SD"},
        {"id": str(uuid.UUID(bytes=KID_HD)), "usage_policy": "HD"},
    ]
    policies = {p["name"]: p for p in message["content_key_usage_policies"]}
    assert set(policies) == {"SD", "HD"}
    assert policies["SD"]["widevine"] == {
        "device_security_level": "SW_SECURE_CRYPTO",
        "hdcp": "NONE",
    }
    assert policies["HD"]["widevine"] == {
        "device_security_level": "HW_SECURE_DECODE",
        "hdcp": "2.0",
        "cgms-a": "never",
    }
    assert policies["HD"]["playready"] == {
        "min_device_security_level": 3000,
        "compressed_digital_video_opl": 500,
    }
    assert policies["HD"]["fairplay"] == {"hdcp": "TYPE1", "allow_airplay": False}


ACCESS = {**RENTAL, "access": {"ip_allow": ["203.0.113.7/32"], "require_device_id": True}}


def access_call(device_id: str = "ed85e2bc-63d8-4a26-8ad0-18c382c12dd9"):
    return make_call(
        ACCESS,
        challenge=challenge(DrmSystem.PLAYREADY, payload=b"<soap>AcquireLicense</soap>"),
        client=ClientInfo(ip_address="203.0.113.7", device_id=device_id, trusted=True),
        metadata={"session_id": "session_0001"},
    )


def test_access_rules_are_not_sent_by_default():
    """Regression: the end user's address and free-form device id went to Axinom, which
    sees the proxy's address and expects PlayReady device GUIDs."""
    request = adapter(prevent_drm_message_reuse=True).build_request(access_call("my-phone"))
    assert request.url.startswith("https://drm-playready-licensing")
    assert request.headers["Content-Type"] == "text/xml; charset=utf-8"
    assert "SOAPAction" in request.headers
    assert "X-Forwarded-For" not in request.headers
    message = envelope(request)["message"]
    assert message["license_server"]["access_control"] == {"prevent_drm_message_reuse": True}
    assert message["session"] == {"user_id": "alice", "id": "session_0001"}


def test_access_rules_reach_license_server_when_asked():
    settings = {"send_allowed_ip_addresses": True, "send_playready_device_ids": True}
    request = adapter(**settings).build_request(access_call())
    assert request.headers["X-Forwarded-For"] == "203.0.113.7"
    assert envelope(request)["message"]["license_server"]["access_control"] == {
        "allowed_ip_addresses": ["203.0.113.7"],
        "playready": {"allowed_device_ids": ["ed85e2bc-63d8-4a26-8ad0-18c382c12dd9"]},
    }


def test_a_device_id_that_is_no_guid_is_refused_when_device_ids_are_sent():
    with pytest.raises(ProxyError) as caught:
        adapter(send_playready_device_ids=True).build_request(access_call("my-phone"))
    assert caught.value.reason is Reason.REQUEST_INVALID


def test_session_id_from_the_token_claim():
    principal = Principal(subject="bob", issuer="i", claims={"sid": "s-42"})
    message = envelope(adapter().build_request(make_call(RENTAL, principal=principal)))["message"]
    assert message["session"] == {"user_id": "bob", "id": "s-42"}


def test_query_transport_puts_the_message_in_axdrmmessage():
    request = adapter(message_transport="query").build_request(make_call(RENTAL))
    assert "X-AxDRM-Message" not in request.headers
    assert "?AxDrmMessage=ey" in request.url


def test_no_key_ids_is_request_invalid_and_no_allowed_key_is_rejected():
    with pytest.raises(ProxyError) as caught:
        adapter().build_request(make_call(RENTAL, challenge=challenge(key_ids=())))
    assert caught.value.reason is Reason.REQUEST_INVALID
    with pytest.raises(ProxyError) as caught:
        adapter().build_request(make_call(SPLIT, challenge=challenge(key_ids=(KID_UHD,))))
    assert caught.value.reason is Reason.UPSTREAM_REJECTED


def test_service_certificate_request_goes_through_without_key_ids():
    info = challenge(key_ids=(), payload=b"\x08\x04", request_type=RequestType.SERVICE_CERTIFICATE)
    request = adapter().build_request(make_call(RENTAL, challenge=info))
    assert request.body == b"\x08\x04"
    assert envelope(request)["message"]["content_keys_source"] == {"inline": []}


def test_license_keeps_identity_headers_and_drops_the_response_message():
    info_token = jwt.encode(
        {
            "message": {
                "type": "widevine_license_request_info",
                "device_info": {"platform": "x", "client_token": "secret"},
            }
        },
        COM_KEY,
        algorithm="HS256",
    )
    answer = response(
        200,
        b"\x08\x02\x12\x00",
        **{
            "X-AxDRM-Identity": "Axinom DRM - Widevine API",
            "X-AxDRM-Server": "pod-7",
            "X-AxDRM-Version": "6.24.1",
            "X-AxDRM-Message": info_token,
        },
    )
    result = adapter(return_license_request_info=True).parse_response(make_call(RENTAL), answer)
    assert result.license == b"\x08\x02\x12\x00"
    assert result.vendor_metadata == {
        "x-axdrm-identity": "Axinom DRM - Widevine API",
        "x-axdrm-server": "pod-7",
        "x-axdrm-version": "6.24.1",
        "axinom.request_info.type": "widevine_license_request_info",
        "axinom.device_info.platform": "x",
    }
    assert info_token not in str(result)


@pytest.mark.parametrize(
    ("status", "reason"),
    [
        (400, Reason.UPSTREAM_REJECTED),
        (403, Reason.UPSTREAM_REJECTED),
        (500, Reason.UPSTREAM_UNAVAILABLE),
        (503, Reason.UPSTREAM_UNAVAILABLE),
    ],
)
def test_error_header_maps_to_reason_with_the_vendor_message(status, reason):
    answer = response(
        status,
        b"",
        **{"X-AxDRM-ErrorMessage": "DRM client models with revoked certificates are not allowed"},
    )
    with pytest.raises(ProxyError) as caught:
        adapter().parse_response(make_call(RENTAL), answer)
    assert caught.value.reason is reason
    assert caught.value.metadata["vendor_status"] == str(status)
    assert "revoked certificates" in caught.value.metadata["vendor_message"]


def test_playready_soap_fault_is_read_from_the_500():
    fault = (
        b'<s:Envelope xmlns:s="http://schemas.xmlsoap.org/soap/envelope/"><s:Body><s:Fault>'
        b"<faultcode>s:Server</faultcode><faultstring>Device revoked</faultstring><detail>"
        b"<Exception><StatusCode>0x8004C065</StatusCode></Exception></detail></s:Fault></s:Body></s:Envelope>"
    )
    call = make_call(RENTAL, challenge=challenge(DrmSystem.PLAYREADY, payload=b"<x/>"))
    with pytest.raises(ProxyError) as caught:
        adapter().parse_response(
            call, response(500, fault, **{"X-AxDRM-ErrorMessage": "Device revoked"})
        )
    assert caught.value.reason is Reason.UPSTREAM_REJECTED
    assert caught.value.metadata["vendor_code"] == "0x8004C065"


def test_retry_after_travels_with_an_outage():
    with pytest.raises(ProxyError) as caught:
        adapter().parse_response(make_call(RENTAL), response(503, b"", **{"Retry-After": "7"}))
    assert caught.value.retry_after == 7


def test_bad_communication_key_fails_at_start_with_its_key_path():
    registry = VendorRegistry()
    AxinomVendorPlugin().proxy_register_vendors(registry.register)
    raw = {
        "backends": {"ax": {"vendor": "axinom", "com_key_id": COM_KEY_ID, "com_key": "c2hvcnQ="}}
    }
    config = ConfigContext(
        raw=raw, core=CoreConfig(), base_dir=__import__("pathlib").Path("."), services=Services()
    )
    assert registry.configure_backends(config) == {}
    assert config.errors[0][0] == "backends.ax"
    assert "com_key" in config.errors[0][1]
    assert "c2hvcnQ" not in config.errors[0][1]


@pytest.mark.parametrize("request_type", [RequestType.RENEWAL, RequestType.RELEASE])
def test_a_widevine_renewal_or_release_goes_with_an_empty_key_list(request_type):
    """Regression: renewals and releases name no key and were refused (REQUEST_INVALID)."""
    call = make_call(RENTAL, challenge=challenge(key_ids=(), request_type=request_type))
    message = envelope(adapter().build_request(call))["message"]
    assert message["content_keys_source"] == {"inline": []}


def test_the_rental_window_shortens_the_duration():
    """Regression: rental_duration was never rendered (Axinom has no such field)."""
    short_rental = {"name": "r", "license": {"license_duration": "30d", "rental_duration": "2d"}}
    message = envelope(adapter().build_request(make_call(short_rental)))["message"]
    assert message["license"]["duration"] == 172800
    rental_only = {"name": "r", "license": {"rental_duration": "2d"}}
    message = envelope(adapter().build_request(make_call(rental_only)))["message"]
    assert message["license"]["duration"] == 172800
    unlimited = {"name": "r", "license": {"license_duration": 0, "rental_duration": "2d"}}
    message = envelope(adapter().build_request(make_call(unlimited)))["message"]
    assert message["license"]["duration"] == 172800


@pytest.mark.parametrize("drm", [DrmSystem.PLAYREADY, DrmSystem.FAIRPLAY])
def test_a_policy_that_forbids_playback_is_refused_where_axinom_has_no_field(drm):
    """Regression: can_play = false was rendered for Widevine only."""
    no_play = {"name": "r", "license": {"can_play": False}}
    with pytest.raises(ProxyError) as caught:
        adapter().build_request(make_call(no_play, challenge=challenge(drm, payload=b"<x/>")))
    assert caught.value.reason is Reason.UPSTREAM_REJECTED
    assert caught.value.metadata["vendor_code"] == "POLICY_FORBIDS_PLAY"
    message = envelope(adapter().build_request(make_call(no_play)))["message"]
    assert message["license"]["widevine"] == {"allow_playback": False}


def test_the_license_window_is_checked_and_caps_the_duration():
    clock = FakeClock()
    now = datetime.fromtimestamp(clock.time(), UTC)
    later = {"name": "r", "license": {"start": now + timedelta(minutes=5)}}
    with pytest.raises(ProxyError) as caught:
        adapter(clock).build_request(make_call(later, clock))
    assert caught.value.reason is Reason.NOT_ENTITLED
    ending = {
        "name": "r",
        "license": {"license_duration": "30d", "expiry": now + timedelta(hours=1)},
    }
    message = envelope(adapter(clock).build_request(make_call(ending, clock)))["message"]
    assert message["license"]["duration"] == 3600
    assert message["license"]["expiration_datetime"] == (now + timedelta(hours=1)).isoformat()


def test_axinom_renders_every_rule_of_every_drm():
    policy = Policy.model_validate({**SPLIT, "license": {**DOWNLOAD["license"]}})
    for drm in (DrmSystem.WIDEVINE, DrmSystem.PLAYREADY, DrmSystem.FAIRPLAY):
        assert policy_gaps(adapter(), policy, drm) == []
