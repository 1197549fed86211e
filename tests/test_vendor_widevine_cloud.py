"""The Widevine cloud (getlicense) adapter with no network."""

from __future__ import annotations

import base64
import hashlib
import json

import pytest
from cryptography.hazmat.primitives import padding
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

from plugins.vendors.widevine_cloud import WidevineCloudAdapter, WidevineCloudSettings, sign_request
from proxy.challenge import samples
from proxy.challenge.widevine import parse_widevine
from proxy.errors import ProxyError, Reason
from proxy.model import DrmSystem, RequestType
from proxy.services import Services
from proxy.testing import FakeClock
from tests.test_vendor_common import (
    DOWNLOAD,
    KID_SD,
    RENTAL,
    SPLIT,
    challenge,
    make_call,
    response,
)

KEY = bytes(range(32))
IV = bytes(range(16, 32))


def adapter(**settings) -> WidevineCloudAdapter:
    doc = {
        "vendor": "widevine_cloud",
        "provider": "acme",
        "signing_key": KEY.hex(),
        "signing_iv": IV.hex(),
        **settings,
    }
    return WidevineCloudAdapter(
        "wv", WidevineCloudSettings.model_validate(doc), Services(clock=FakeClock())
    )


def unwrap(request) -> dict:
    """The inner message, after checking the signature the way Google's service does."""
    envelope = json.loads(request.body)
    assert envelope["signer"] == "acme"
    inner = base64.b64decode(envelope["request"])
    decryptor = Cipher(algorithms.AES(KEY), modes.CBC(IV)).decryptor()
    padded = decryptor.update(base64.b64decode(envelope["signature"])) + decryptor.finalize()
    unpadder = padding.PKCS7(128).unpadder()
    assert unpadder.update(padded) + unpadder.finalize() == hashlib.sha1(inner).digest()  # noqa: S324
    return json.loads(inner)


def test_rental_envelope_and_inner_message():
    request = adapter().build_request(make_call(RENTAL, content_id="movie-1"))
    assert request.url == "https://license.widevine.com/cenc/getlicense"
    assert request.headers["Content-Type"] == "application/json"
    inner = unwrap(request)
    assert base64.b64decode(inner["payload"]) == b"\x08\x01\x12\x04test"
    assert base64.b64decode(inner["content_id"]) == b"movie-1"
    assert inner["provider"] == "acme"
    assert inner["policy_overrides"] == {
        "can_play": True,
        "can_persist": False,
        "license_duration_seconds": 172800,
        "rental_duration_seconds": 172800,
        "playback_duration_seconds": 14400,
    }
    assert "allowed_track_types" not in inner and "content_key_specs" not in inner


def test_download_and_split():
    download = unwrap(adapter().build_request(make_call(DOWNLOAD)))
    assert download["policy_overrides"]["can_persist"] is True
    assert download["policy_overrides"]["renewal_server_url"] == "https://renew.example/wv"
    split = unwrap(adapter(use_policy_overrides_exclusively=True).build_request(make_call(SPLIT)))
    assert split["use_policy_overrides_exclusively"] is True
    assert [s["track_type"] for s in split["content_key_specs"]] == ["AUDIO", "SD", "HD"]
    assert split["content_key_specs"][1] == {
        "track_type": "SD",
        "security_level": 1,
        "required_output_protection": {"hdcp": "HDCP_NONE"},
    }


def test_signature_is_32_bytes_over_the_exact_request_bytes():
    assert len(sign_request(b"{}", KEY, IV)) == 32
    assert sign_request(b"{}", KEY, IV) != sign_request(b"{ }", KEY, IV)


def test_service_certificate_request_carries_only_the_payload():
    info = challenge(key_ids=(), payload=b"\x08\x04", request_type=RequestType.SERVICE_CERTIFICATE)
    inner = unwrap(adapter().build_request(make_call(RENTAL, challenge=info)))
    assert inner == {"payload": base64.b64encode(b"\x08\x04").decode(), "provider": "acme"}


def test_unsigned_requests_only_when_asked():
    request = adapter(sign=False, signing_key=None, signing_iv=None).build_request(
        make_call(RENTAL)
    )
    assert "signature" not in json.loads(request.body)
    with pytest.raises(ValueError, match="needs signing_key"):
        adapter(signing_key=None)


def test_ok_answer_is_decoded_with_metadata():
    doc = {
        "status": "OK",
        "license": base64.b64encode(b"\x08\x02\x12\x00").decode(),
        "security_level": 3,
        "make": "acme",
        "license_metadata": {"license_type": "STREAMING"},
    }
    result = adapter().parse_response(make_call(RENTAL), response(200, json.dumps(doc).encode()))
    assert result.license == b"\x08\x02\x12\x00"
    assert result.vendor_metadata == {
        "widevine.security_level": "3",
        "widevine.make": "acme",
        "widevine.license_type": "STREAMING",
    }


@pytest.mark.parametrize(
    ("doc", "reason"),
    [
        (
            {"status": "ACCESS_DENIED", "status_message": "revoked", "internal_status": 127},
            Reason.UPSTREAM_REJECTED,
        ),
        ({"status": "INVALID_LICENSE_CHALLENGE"}, Reason.UPSTREAM_REJECTED),
        ({"status": "SIGNATURE_FAILED"}, Reason.UPSTREAM_REJECTED),
        ({"status": "INTERNAL_ERROR"}, Reason.UPSTREAM_UNAVAILABLE),
        ({"status": "OK"}, Reason.UPSTREAM_BAD_RESPONSE),
        ({"status": "OK", "license": "%%%"}, Reason.UPSTREAM_BAD_RESPONSE),
        ({"license": "CAI="}, Reason.UPSTREAM_BAD_RESPONSE),
    ],
)
def test_http_200_with_a_status_other_than_ok_is_an_error(doc, reason):
    with pytest.raises(ProxyError) as caught:
        adapter().parse_response(make_call(RENTAL), response(200, json.dumps(doc).encode()))
    assert caught.value.reason is reason
    if doc.get("status") not in (None, "OK"):
        assert caught.value.metadata["vendor_code"] == doc["status"]
    if "internal_status" in doc:
        assert caught.value.metadata["vendor_internal_status"] == "127"


def test_non_json_and_http_errors():
    with pytest.raises(ProxyError) as caught:
        adapter().parse_response(make_call(RENTAL), response(200, b"<html>"))
    assert caught.value.reason is Reason.UPSTREAM_BAD_RESPONSE
    with pytest.raises(ProxyError) as caught:
        adapter().parse_response(make_call(RENTAL), response(502, b""))
    assert caught.value.reason is Reason.UPSTREAM_UNAVAILABLE


def test_other_drms_are_not_served():
    with pytest.raises(ProxyError) as caught:
        adapter().build_request(make_call(RENTAL, challenge=challenge(DrmSystem.PLAYREADY)))
    assert caught.value.reason is Reason.DRM_NOT_SUPPORTED


def test_an_http_error_body_never_reaches_the_caller(caplog):
    """Regression: the first 300 characters of an HTTP error body went to callers."""
    caplog.set_level("INFO", logger="plugins.vendors")
    body = b"<html><body>java.lang.NullPointerException at com.google.Foo.bar(Foo.java:1)</body>"
    with pytest.raises(ProxyError) as caught:
        adapter().parse_response(make_call(RENTAL), response(503, body))
    assert caught.value.reason is Reason.UPSTREAM_UNAVAILABLE
    assert "vendor_message" not in caught.value.metadata
    assert "widevine_cloud answered HTTP 503" in caplog.text


def test_a_status_message_that_is_a_stack_trace_is_dropped():
    doc = {"status": "INTERNAL_ERROR", "status_message": "Exception: at x.y(z.cc:12)"}
    with pytest.raises(ProxyError) as caught:
        adapter().parse_response(make_call(RENTAL), response(200, json.dumps(doc).encode()))
    assert caught.value.metadata["vendor_code"] == "INTERNAL_ERROR"
    assert "vendor_message" not in caught.value.metadata


#: A content id that is not text (the proxy shows it as hex).
BINARY_CONTENT_ID = bytes.fromhex("a1b2c3d4e5f60718293a4b5c6d7e8f90")


def parsed_challenge(content_id: bytes):
    body = samples.widevine_license_request(key_ids=[KID_SD], content_id=content_id)
    return parse_widevine(body)


def test_a_binary_content_id_from_the_challenge_is_sent_as_its_own_bytes():
    """Regression: the hex text the proxy shows was sent instead of the bytes."""
    info = parsed_challenge(BINARY_CONTENT_ID)
    assert info.content_id == BINARY_CONTENT_ID.hex()
    inner = unwrap(adapter().build_request(make_call(RENTAL, challenge=info)))
    assert base64.b64decode(inner["content_id"]) == BINARY_CONTENT_ID


def test_a_caller_given_content_id_is_sent_as_utf8():
    inner = unwrap(adapter().build_request(make_call(RENTAL, content_id="film/été")))
    assert base64.b64decode(inner["content_id"]) == "film/été".encode()
