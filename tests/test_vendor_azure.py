"""The Azure Media Services / MK.IO adapter with no network."""

from __future__ import annotations

import base64
import json
import uuid
from datetime import UTC, datetime, timedelta
from urllib.parse import parse_qs, urlsplit

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from plugins.vendors.azure import CONTENT_KEY_CLAIM, AzureAdapter, AzureSettings
from proxy.challenge import samples
from proxy.challenge.widevine import parse_widevine
from proxy.errors import ProxyError, Reason
from proxy.model import DrmSystem, Principal, RequestType
from proxy.policy import Hdcp, LicenseSettings, Policy, TrackRules
from proxy.services import Services
from proxy.testing import FakeClock
from tests.test_vendor_common import (
    DOWNLOAD,
    KID_HD,
    KID_SD,
    RENTAL,
    SPLIT,
    challenge,
    make_call,
    policy_gaps,
    response,
)

SYMMETRIC = bytes(range(64))
URLS = {
    "widevine": "https://acct.keydelivery.westeurope.media.azure.net/Widevine/?kid={kid}",
    "playready": "https://acct.keydelivery.westeurope.media.azure.net/PlayReady/?kid={kid}",
    "fairplay": "https://acct.keydelivery.westeurope.media.azure.net/FairPlay/?kid={kid}",
}


def adapter(clock: FakeClock | None = None, **settings) -> AzureAdapter:
    """An adapter whose content key policies (at "Azure") enforce the policy, unless the
    test says otherwise."""
    doc = {
        "vendor": "azure",
        "urls": URLS,
        "issuer": "https://sts.example/",
        "audience": "urn:test",
        "signing_key": base64.b64encode(SYMMETRIC).decode(),
        "policy_enforced_by_vendor": True,
        **settings,
    }
    return AzureAdapter(
        "az", AzureSettings.model_validate(doc), Services(clock=clock or FakeClock())
    )


def bearer(request, key=SYMMETRIC, algorithm="HS256") -> dict:
    header = request.headers["Authorization"]
    assert header.startswith("Bearer ")
    return jwt.decode(
        header[7:],
        key,
        algorithms=[algorithm],
        audience="urn:test",
        issuer="https://sts.example/",
        options={"verify_exp": False, "verify_iat": False, "verify_nbf": False},
    )


def test_rental_request_url_and_minted_claims():
    clock = FakeClock()
    request = adapter(clock).build_request(make_call(RENTAL, clock))
    kid = str(uuid.UUID(bytes=KID_SD))
    assert request.url == URLS["widevine"].format(kid=kid)
    assert request.headers["Content-Type"] == "application/octet-stream"
    claims = bearer(request)
    assert claims[CONTENT_KEY_CLAIM] == kid
    assert claims["exp"] == int(clock.time()) + 300


def test_mk_io_option_election_claims_are_forwarded_and_fixed_claims_added():
    principal = Principal(subject="a", issuer="i", claims={"persistency": "permanent", "other": 1})
    az = adapter(
        forward_claims=["persistency"],
        claims={"tier": "gold"},
        policy_claim="license_policy",
        max_uses=1,
    )
    claims = bearer(az.build_request(make_call(DOWNLOAD, principal=principal)))
    assert claims["persistency"] == "permanent"
    assert "other" not in claims
    assert claims["tier"] == "gold"
    assert claims["license_policy"] == "download"
    assert claims["urn:microsoft:azure:mediaservices:maxuses"] == 1


def test_rs256_key_by_reference():
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    az = adapter(
        algorithm="RS256", signing_key="base64:" + base64.b64encode(pem).decode(), key_id="k1"
    )
    request = az.build_request(make_call(RENTAL))
    assert jwt.get_unverified_header(request.headers["Authorization"][7:])["kid"] == "k1"
    assert bearer(request, key.public_key(), "RS256")[CONTENT_KEY_CLAIM]


def test_passthrough_forwards_the_customer_token_and_query_transport():
    principal = Principal(subject="a", issuer="i", claims={}, token="customer.jwt.token")
    az = adapter(bearer="passthrough", bearer_in="query")
    request = az.build_request(make_call(RENTAL, principal=principal))
    assert "Authorization" not in request.headers
    assert parse_qs(urlsplit(request.url).query)["token"] == ["customer.jwt.token"]


def test_fairplay_form_in_and_ckc_tags_out():
    info = challenge(DrmSystem.FAIRPLAY, payload=b"\x00\x00\x00\x01spc")
    call = make_call(RENTAL, challenge=info, content_id="skd://asset-7")
    request = adapter().build_request(call)
    assert request.headers["Content-Type"] == "application/x-www-form-urlencoded"
    form = parse_qs(request.body.decode())
    assert base64.b64decode(form["spc"][0]) == info.payload
    assert form["assetId"] == ["asset-7"]
    answer = response(200, b"<ckc>" + base64.b64encode(b"the-ckc") + b"</ckc>")
    assert adapter().parse_response(call, answer).license == b"the-ckc"
    with pytest.raises(ProxyError) as caught:
        adapter().parse_response(call, response(200, b"no tags here"))
    assert caught.value.reason is Reason.UPSTREAM_BAD_RESPONSE


def test_widevine_template_is_rendered_from_the_policy_for_each_case():
    az = adapter(widevine_request="template", widevine_provider="acme")
    rental = json.loads(az.build_request(make_call(RENTAL, content_id="m1")).body)
    assert base64.b64decode(rental["payload"]) == b"\x08\x01\x12\x04test"
    assert base64.b64decode(rental["content_id"]) == b"m1"
    assert rental["provider"] == "acme"
    assert rental["policy_overrides"]["rental_duration_seconds"] == 172800
    download = json.loads(az.build_request(make_call(DOWNLOAD)).body)
    assert download["policy_overrides"]["can_persist"] is True
    split = json.loads(
        az.build_request(make_call(SPLIT, challenge=challenge(key_ids=(KID_HD,)))).body
    )
    assert "allowed_track_types" not in split
    assert [s["track_type"] for s in split["content_key_specs"]] == ["AUDIO", "SD", "HD"]


def test_template_answers_in_json_are_decoded_and_refusals_read():
    call = make_call(RENTAL)
    ok = json.dumps({"status": "OK", "license": base64.b64encode(b"\x08\x02\x12\x00").decode()})
    assert adapter().parse_response(call, response(200, ok.encode())).license == b"\x08\x02\x12\x00"
    with pytest.raises(ProxyError) as caught:
        adapter().parse_response(call, response(200, b'{"status":"ACCESS_DENIED"}'))
    assert caught.value.reason is Reason.UPSTREAM_REJECTED
    assert caught.value.metadata["vendor_code"] == "ACCESS_DENIED"


@pytest.mark.parametrize(
    ("status", "reason", "code"),
    [
        (401, Reason.UPSTREAM_REJECTED, "Unauthorized"),
        (403, Reason.UPSTREAM_REJECTED, None),
        (500, Reason.UPSTREAM_UNAVAILABLE, None),
        (302, Reason.UPSTREAM_BAD_RESPONSE, None),
    ],
)
def test_http_errors(status, reason, code):
    with pytest.raises(ProxyError) as caught:
        adapter().parse_response(
            make_call(RENTAL), response(status, b"No token present in authorization header or URL.")
        )
    assert caught.value.reason is reason
    assert caught.value.metadata.get("vendor_code") == code


def test_config_checks_templates_and_mint_settings():
    with pytest.raises(ValueError, match="unknown placeholder 'account'"):
        adapter(urls={"widevine": "https://{account}.example/?kid={kid}"})
    with pytest.raises(ValueError, match="needs issuer"):
        AzureSettings.model_validate(
            {"vendor": "azure", "urls": URLS, "audience": "a", "signing_key": "x"}
        )


def test_a_template_needing_the_key_id_refuses_a_request_without_one():
    with pytest.raises(ProxyError) as caught:
        adapter().build_request(make_call(RENTAL, challenge=challenge(key_ids=())))
    assert caught.value.reason is Reason.REQUEST_INVALID


def test_an_error_body_is_logged_never_passed_to_the_caller(caplog):
    """Regression: the first 300 characters of any error body went to callers."""
    caplog.set_level("INFO", logger="plugins.vendors")
    trace = (
        b"System.InvalidOperationException: boom\r\n   at Key.Delivery.Issue() in D:\\k.cs:line 3"
    )
    with pytest.raises(ProxyError) as caught:
        adapter().parse_response(make_call(RENTAL), response(500, trace))
    assert caught.value.metadata == {"vendor": "azure", "vendor_status": "500"}
    assert "azure answered HTTP 500" in caplog.text
    with pytest.raises(ProxyError) as caught:
        adapter().parse_response(
            make_call(RENTAL), response(401, b'{"error":{"message":"Token expired."}}')
        )
    assert caught.value.metadata["vendor_message"] == "Token expired."


def test_the_widevine_template_sends_a_binary_content_id_as_its_bytes():
    """Regression: the hex text the proxy shows was sent instead of the bytes."""
    content_id = bytes.fromhex("a1b2c3d4e5f60718293a4b5c6d7e8f90")
    body = samples.widevine_license_request(key_ids=[KID_SD], content_id=content_id)
    call = make_call(RENTAL, challenge=parse_widevine(body))
    template = json.loads(adapter(widevine_request="template").build_request(call).body)
    assert base64.b64decode(template["content_id"]) == content_id


def test_a_renewal_without_key_ids_goes_to_the_renewal_url():
    renewal = challenge(key_ids=(), request_type=RequestType.RENEWAL)
    request = adapter(renewal_url="https://acct.example/Widevine/").build_request(
        make_call(RENTAL, challenge=renewal)
    )
    assert request.url == "https://acct.example/Widevine/"
    with pytest.raises(ProxyError) as caught:
        adapter().build_request(make_call(RENTAL, challenge=renewal))
    assert caught.value.reason is Reason.REQUEST_INVALID
    assert "renewal_url" in caught.value.detail


def test_a_template_internal_error_is_an_outage_so_the_next_backend_is_tried():
    """Regression: INTERNAL_ERROR in a template answer was a refusal (no failover)."""
    with pytest.raises(ProxyError) as caught:
        adapter().parse_response(make_call(RENTAL), response(200, b'{"status":"INTERNAL_ERROR"}'))
    assert caught.value.reason is Reason.UPSTREAM_UNAVAILABLE
    assert caught.value.metadata["vendor_code"] == "INTERNAL_ERROR"


def test_max_uses_with_a_token_living_over_an_hour_is_refused_at_config():
    with pytest.raises(ValueError, match="max_uses"):
        adapter(max_uses=1, token_lifetime="2h")
    assert adapter(max_uses=1, token_lifetime="1h").settings.max_uses == 1


@pytest.mark.parametrize("drm", [DrmSystem.WIDEVINE, DrmSystem.PLAYREADY, DrmSystem.FAIRPLAY])
def test_raw_requests_carry_no_policy_so_its_rules_fail_the_config(drm):
    """Regression: raw mode sent only the challenge, dropping every rule silently."""
    raw = adapter(policy_enforced_by_vendor=False)
    gaps = policy_gaps(raw, Policy.model_validate(SPLIT), drm)
    errors = {g.field for g in gaps if g.error}
    assert "allowed_track_types" in errors
    if drm is DrmSystem.PLAYREADY:
        assert "tracks.HD.playready_min_security_level" in errors
    if drm is DrmSystem.FAIRPLAY:
        assert "tracks.HD.fairplay_hdcp" in errors
    assert "policy_enforced_by_vendor" in gaps[0].why
    with pytest.raises(ProxyError) as caught:
        raw.build_request(make_call(RENTAL, challenge=challenge(drm, payload=b"<AcquireLicense/>")))
    assert caught.value.metadata["vendor_code"] == "POLICY_NOT_RENDERABLE"
    assert caught.value.metadata["policy_fields"] == (
        "license.persistent,license.license_duration,license.rental_duration,"
        "license.playback_duration"
    )


def test_vendor_enforcement_can_be_stated_per_drm():
    partial = adapter(policy_enforced_by_vendor=["playready"])
    policy = Policy.model_validate(RENTAL)
    assert policy_gaps(partial, policy, DrmSystem.PLAYREADY) == []
    assert {g.field for g in policy_gaps(partial, policy, DrmSystem.FAIRPLAY)} == {
        "license.persistent",
        "license.license_duration",
        "license.rental_duration",
        "license.playback_duration",
    }


def test_a_claim_that_tightens_a_vendor_enforced_policy_is_refused():
    """The content key policy at Azure is configured once: it can't follow a claim."""
    call = make_call(RENTAL, challenge=challenge(DrmSystem.PLAYREADY, payload=b"<x/>"))
    adapter().build_request(call)
    call.policy.tighten_license(LicenseSettings(license_duration=3600))
    with pytest.raises(ProxyError) as caught:
        adapter().build_request(call)
    assert caught.value.metadata["policy_fields"] == "license.license_duration"
    keyed = make_call(SPLIT, challenge=challenge(DrmSystem.PLAYREADY, payload=b"<x/>"))
    keyed.policy.tighten_key(KID_SD, TrackRules(playready_min_security_level=3000))
    with pytest.raises(ProxyError) as caught:
        adapter().build_request(keyed)
    assert caught.value.metadata["policy_fields"] == (
        f"key_rules.{uuid.UUID(bytes=KID_SD)}.playready_min_security_level"
    )


def test_the_template_folds_per_key_rules_and_keeps_the_license_window():
    """Regression: the template ignored key rules and license.start."""
    clock = FakeClock()
    template_adapter = adapter(clock, widevine_request="template")
    call = make_call(SPLIT, clock)
    call.policy.tighten_key(KID_HD, TrackRules(hdcp=Hdcp.V2_2))
    template = json.loads(template_adapter.build_request(call).body)
    specs = {s["track_type"]: s for s in template["content_key_specs"]}
    assert specs["HD"]["required_output_protection"]["hdcp"] == "HDCP_V2_2"
    now = datetime.fromtimestamp(clock.time(), UTC)
    later = {**RENTAL, "license": {**RENTAL["license"], "start": now + timedelta(days=1)}}
    with pytest.raises(ProxyError) as caught:
        template_adapter.build_request(make_call(later, clock))
    assert caught.value.reason is Reason.NOT_ENTITLED
    ending = {**RENTAL, "license": {**RENTAL["license"], "expiry": now + timedelta(hours=2)}}
    template = json.loads(template_adapter.build_request(make_call(ending, clock)).body)
    assert template["policy_overrides"]["license_duration_seconds"] == 7200
    assert template["policy_overrides"]["rental_duration_seconds"] == 7200
