"""The castLabs DRMtoday adapter: the upfront token and CRT it mints, each DRM's framing, the
answers and errors it reads (no network); then through the proxy to its emulator."""

from __future__ import annotations

import asyncio
import base64
import json
import logging
import uuid
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import grpc
import jwt
import pytest

from plugins.vendors.drmtoday import DrmTodayAdapter, DrmTodaySettings, DrmTodayVendorPlugin
from plugins.vendors.drmtoday.auth import auth_token, custom_data
from plugins.vendors.drmtoday.crt import iso_duration
from plugins.vendors.drmtoday.errors import RESP_CODES
from plugins.vendors.drmtoday.fairplay import read_key_uri
from proxy.builder import build_pipeline
from proxy.challenge import samples
from proxy.clock import Clock
from proxy.config import ConfigContext, CoreConfig
from proxy.errors import ConfigError, ProxyError, Reason
from proxy.model import DrmSystem, Principal, RequestType
from proxy.policy import Policy
from proxy.services import Services
from proxy.testing import FakeClock, proxy_config
from proxy.testing.emulator import license_facts
from proxy.vendors import VendorRegistry
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

DATA = Path(__file__).parent / "data" / "drmtoday"
SECRET = bytes(range(32))
KEY_ID = "00000000-1111-2222-3333-444444444444"
MERCHANT = "organizationId"


def adapter(clock: Clock | None = None, **settings: Any) -> DrmTodayAdapter:
    doc = {
        "vendor": "drmtoday",
        "merchant": MERCHANT,
        "auth_key_id": KEY_ID,
        "auth_secret": SECRET.hex(),
        **settings,
    }
    return DrmTodayAdapter(
        "dt", DrmTodaySettings.model_validate(doc), Services(clock=clock or FakeClock())
    )


def token_of(request: Any) -> dict[str, Any]:
    """The upfront token's claims, verified with the shared secret; optData and crt decoded."""
    token = request.headers["x-dt-auth-token"]
    header = jwt.get_unverified_header(token)
    assert header == {"alg": "HS256", "kid": KEY_ID, "typ": "JWT"}
    claims = jwt.decode(
        token, SECRET, algorithms=["HS256"], options={"verify_exp": False, "verify_iat": False}
    )
    assert isinstance(claims["optData"], str) and isinstance(claims["crt"], str)
    return {**claims, "optData": json.loads(claims["optData"]), "crt": json.loads(claims["crt"])}


# -- the test vectors (VENDOR_FACTS 9.9) ------------------------------------------------


def test_custom_data_vector():
    vector = json.loads((DATA / "custom_data_staging_demo.json").read_text())
    value = custom_data(vector["merchant"], vector["userId"], vector["sessionId"])
    assert value == vector["x-dt-custom-data"]
    assert base64.b64decode(value).decode() == vector["json"]


def test_upfront_token_vector_bit_for_bit():
    vector = json.loads((DATA / "upfront_token_docs_example.json").read_text())
    token = auth_token(
        bytes.fromhex(vector["secret_hex"]),
        vector["header"]["kid"],
        vector["header"]["alg"],
        opt=vector["optData"],
        crt=vector["crt"],
        iat=vector["iat"],
        exp=vector["exp"],
        jti=vector["jti"],
    )
    assert token == vector["token"]


def test_the_adapter_renders_the_vectors_optdata_and_crt_from_a_policy():
    """The vector's CRT (a 7-day rental, 3 hours once started) is what the adapter makes of
    the same rules; with the vector's jti its token is the vector's, bit for bit."""
    vector = json.loads((DATA / "upfront_token_docs_example.json").read_text())
    clock = FakeClock(start=vector["iat"])
    dt = adapter(
        clock,
        auth_secret="hex:" + vector["secret_hex"],
        token_lifetime=vector["exp"] - vector["iat"],
        crt_ref=[":template_id"],
        log_request_id=False,
    )
    seven_days = {"name": "r", "license": {"license_duration": "7d", "playback_duration": "3h"}}
    principal = Principal(subject="rental", issuer="test", claims={"sub": "rental"})
    call = make_call(seven_days, clock, content_id="asset01", principal=principal)
    request = dt.build_request(call)
    sent = jwt.decode(
        request.headers["x-dt-auth-token"],
        bytes.fromhex(vector["secret_hex"]),
        algorithms=["HS256"],
        options={"verify_exp": False},
    )
    assert sent["optData"] == vector["optData"]
    assert sent["crt"] == vector["crt"]
    assert (sent["iat"], sent["exp"]) == (vector["iat"], vector["exp"])
    again = auth_token(
        bytes.fromhex(vector["secret_hex"]),
        KEY_ID,
        "HS256",
        opt=sent["optData"],
        crt=sent["crt"],
        iat=sent["iat"],
        exp=sent["exp"],
        jti=vector["jti"],
    )
    assert again == vector["token"]


# -- what the token says -------------------------------------------------------------------


def test_rental_widevine_request_field_by_field():
    clock = FakeClock()
    call = make_call(RENTAL, clock, content_id="movie-1")
    request = adapter(clock).build_request(call)
    url = urlsplit(request.url)
    assert (url.scheme, url.netloc, url.path) == (
        "https",
        "lic.drmtoday.com",
        "/license-proxy-widevine/cenc/",
    )
    query = parse_qs(url.query)
    assert set(query) == {"logRequestId"} and len(query["logRequestId"][0]) == 32
    assert request.body == call.challenge.payload
    assert request.headers["Content-Type"] == "application/octet-stream"
    assert "x-dt-custom-data" not in request.headers
    claims = token_of(request)
    assert claims["optData"] == {"merchant": MERCHANT, "userId": "alice"}
    assert claims["crt"] == {
        "assetId": "movie-1",
        "profile": {"type": "rental", "relativeExpiration": "P2D", "playDuration": "PT4H"},
        "storeLicense": False,
    }
    assert claims["iat"] == int(clock.time())
    assert claims["exp"] == int(clock.time()) + 60
    uuid.UUID(claims["jti"])
    assert token_of(adapter(clock).build_request(call))["jti"] != claims["jti"]


def test_a_download_is_a_stored_rental_and_its_renewal_rules_are_only_warned_about():
    dt = adapter()
    claims = token_of(dt.build_request(make_call(DOWNLOAD, content_id="m")))
    assert claims["crt"]["profile"] == {
        "type": "rental",
        "relativeExpiration": "P30D",
        "playDuration": "P2D",
    }
    assert claims["crt"]["storeLicense"] is True
    gaps = policy_gaps(dt, Policy.model_validate(DOWNLOAD), DrmSystem.WIDEVINE)
    assert {g.field for g in gaps} == {
        "license.renewal.enabled",
        "license.renewal.delay",
        "license.renewal.url",
    }
    assert not any(g.error for g in gaps)


def test_no_time_limit_is_a_purchase_and_the_keyed_shape_is_a_setting():
    unlimited = {"name": "u", "license": {"license_duration": 0, "persistent": True}}
    crt = token_of(adapter().build_request(make_call(unlimited)))["crt"]
    assert crt["profile"] == {"type": "purchase"}
    crt = token_of(adapter(crt_profile="keyed").build_request(make_call(RENTAL)))["crt"]
    assert crt["profile"] == {"rental": {"relativeExpiration": "P2D", "playDuration": "PT4H"}}
    crt = token_of(adapter(crt_profile="keyed").build_request(make_call(unlimited)))["crt"]
    assert crt["profile"] == {"purchase": {}}


@pytest.mark.parametrize(
    ("seconds", "text"),
    [(172800, "P2D"), (14400, "PT4H"), (90061, "P1DT1H1M1S"), (1800, "PT30M"), (59, "PT59S")],
)
def test_iso_durations(seconds, text):
    assert iso_duration(seconds) == text


def test_the_rental_window_and_the_expiry_shorten_relative_expiration():
    clock = FakeClock()
    policy = {"name": "r", "license": {"license_duration": "30d", "rental_duration": "2d"}}
    crt = token_of(adapter(clock).build_request(make_call(policy, clock)))["crt"]
    assert crt["profile"]["relativeExpiration"] == "P2D"
    expiring = {"name": "e", "license": {"expiry": "2027-01-15T08:00:00Z"}}
    clock.now = 1_800_000_000 - 3600  # an hour before the expiry (2027-01-15T08:00:00Z)
    crt = token_of(adapter(clock).build_request(make_call(expiring, clock)))["crt"]
    assert crt["profile"] == {"type": "rental", "relativeExpiration": "PT1H"}


def test_widevine_rules_go_per_quality_class():
    classes = {
        "name": "q",
        "tracks": {
            "HD": {"widevine_security_level": 3, "hdcp": "V1"},
            "UHD1": {"widevine_security_level": 5, "hdcp": "V2_2"},
            "UHD2": {"widevine_security_level": 4, "hdcp": "V2_3"},
        },
    }
    crt = token_of(adapter().build_request(make_call(classes)))["crt"]
    assert crt["op"] == {
        "config": {
            "HD": {"WidevineM": {"minSL": 3, "requireHDCP": "HDCP_V1"}},
            "UHD": {"WidevineM": {"minSL": 5, "requireHDCP": "HDCP_V23"}},
        }
    }
    crt = token_of(adapter(hdcp_names="widevine").build_request(make_call(classes)))["crt"]
    assert crt["op"]["config"]["UHD"]["WidevineM"]["requireHDCP"] == "HDCP_V2_3"
    playready = make_call(classes, challenge=challenge(DrmSystem.PLAYREADY, payload=b"<x/>"))
    assert "op" not in token_of(adapter().build_request(playready))["crt"]


def test_a_keys_own_rules_tighten_its_quality_class():
    call = make_call({"name": "k", "tracks": {"HD": {"widevine_security_level": 3}}})
    call.policy.key_rules[KID_HD] = call.policy.rules_for_key(KID_HD).model_copy(
        update={"widevine_security_level": 5}
    )
    crt = token_of(adapter().build_request(call))["crt"]
    assert crt["op"]["config"]["HD"]["WidevineM"] == {"minSL": 5}


def test_what_a_crt_cant_carry_fails_the_start():
    dt = adapter()
    split = Policy.model_validate(SPLIT)
    errors = {g.field for g in policy_gaps(dt, split, DrmSystem.WIDEVINE) if g.error}
    assert errors == {
        "allowed_track_types",
        "tracks.SD.widevine_security_level",
        "tracks.SD.hdcp",
        "tracks.HD.cgms_a",
    }
    errors = {g.field for g in policy_gaps(dt, split, DrmSystem.PLAYREADY) if g.error}
    assert errors == {
        "allowed_track_types",
        "tracks.SD.playready_min_security_level",
        "tracks.HD.playready_min_security_level",
        "tracks.HD.playready_output_protection",
    }
    errors = {g.field for g in policy_gaps(dt, split, DrmSystem.FAIRPLAY) if g.error}
    assert errors == {
        "allowed_track_types",
        "tracks.HD.fairplay_hdcp",
        "tracks.HD.fairplay_allow_airplay",
    }


def test_default_rules_that_would_reach_an_unmapped_class_fail_the_start():
    policy = Policy.model_validate({"name": "d", "tracks": {"DEFAULT": {"hdcp": "V1"}}})
    [gap] = policy_gaps(adapter(), policy, DrmSystem.WIDEVINE)
    assert (gap.field, gap.error) == ("tracks.DEFAULT.hdcp", True)
    assert "quality_classes" in gap.why
    every_type = {"SD": "SD", "AUDIO": "AUDIO", "HD": "HD", "UHD1": "UHD", "UHD2": "UHD"}
    assert policy_gaps(adapter(quality_classes=every_type), policy, DrmSystem.WIDEVINE) == []


def test_the_pipeline_refuses_such_a_policy_at_start_with_its_key_path(vendor_sandbox):
    config = proxy_config()
    config["backends"]["dt"] = vendor_sandbox.vendors["drmtoday"].backend("http://127.0.0.1:9")
    config["policies"].append({**SPLIT, "backends": ["dt"]})
    with pytest.raises(ConfigError) as raised:
        build_pipeline(config)
    errors = dict(raised.value.errors)
    assert "backend 'dt' (drmtoday)" in errors["policies[1].tracks.SD.hdcp"]
    assert "quality_classes" in errors["policies[1].tracks.SD.hdcp"]
    config["backends"]["dt"]["policy_enforced_by_vendor"] = True
    assert build_pipeline(config).backends["dt"]


def test_can_play_false_is_refused_where_the_crt_has_no_field():
    with pytest.raises(ProxyError) as caught:
        adapter().build_request(make_call({"name": "n", "license": {"can_play": False}}))
    assert caught.value.metadata["vendor_code"] == "POLICY_FORBIDS_PLAY"


def test_a_token_without_a_subject_is_request_invalid():
    nobody = Principal(subject="", issuer="test", claims={})
    with pytest.raises(ProxyError) as caught:
        adapter().build_request(make_call(RENTAL, principal=nobody))
    assert caught.value.reason is Reason.REQUEST_INVALID


def test_session_id_and_custom_data_when_configured():
    principal = Principal(subject="alice", issuer="t", claims={"sub": "alice", "sid": "s-1"})
    request = adapter(custom_data_header="dt-custom-data").build_request(
        make_call(RENTAL, principal=principal)
    )
    assert token_of(request)["optData"] == {
        "merchant": MERCHANT,
        "userId": "alice",
        "sessionId": "s-1",
    }
    assert json.loads(base64.b64decode(request.headers["dt-custom-data"])) == {
        "userId": "alice",
        "sessionId": "s-1",
        "merchant": MERCHANT,
    }
    call = make_call(RENTAL, principal=principal, metadata={"session_id": "from-request"})
    assert token_of(adapter().build_request(call))["optData"]["sessionId"] == "from-request"


def test_spec_conform_and_no_log_request_id():
    request = adapter(widevine_spec_conform=True, log_request_id=False).build_request(
        make_call(RENTAL)
    )
    assert urlsplit(request.url).query == "specConform=true"


def test_playready_goes_as_soap_with_its_action():
    call = make_call(RENTAL, challenge=challenge(DrmSystem.PLAYREADY, payload=b"<soap/>"))
    request = adapter().build_request(call)
    assert urlsplit(request.url).path == "/license-proxy-headerauth/drmtoday/RightsManager.asmx"
    assert request.headers["Content-Type"] == "text/xml; charset=utf-8"
    assert request.headers["SOAPAction"] == (
        '"http://schemas.microsoft.com/DRM/2007/03/protocols/AcquireLicense"'
    )
    assert request.body == b"<soap/>"


def test_fairplay_goes_as_a_percent_encoded_spc_form():
    spc = bytes([0xFB, 0xFF, 0xFE]) * 40  # base64 full of + and /
    info = challenge(DrmSystem.FAIRPLAY, key_ids=(), payload=spc)
    call = make_call(RENTAL, challenge=info, content_id="skd://movie-9?iv=00")
    request = adapter().build_request(call)
    assert urlsplit(request.url).path == "/license-server-fairplay/"
    assert request.headers["Content-Type"] == "application/x-www-form-urlencoded"
    text = request.body.decode()
    assert text.startswith("spc=") and "+" not in text and "/" not in text and "&" not in text
    assert base64.b64decode(parse_qs(text)["spc"][0]) == spc
    assert token_of(request)["crt"]["assetId"] == "movie-9"


def test_a_drmtoday_key_uri_names_asset_and_variant():
    found = read_key_uri("drmtoday?assetId=night-train&variantId=hd")
    assert found.content_id == "night-train"
    assert found.facts == {"drmtoday_asset_id": "night-train", "drmtoday_variant_id": "hd"}
    assert read_key_uri("assetId=a1").content_id == "a1"
    with pytest.raises(ValueError, match="drmtoday"):
        read_key_uri("drmtoday?variantId=hd")
    info = challenge(DrmSystem.FAIRPLAY, key_ids=(), payload=b"\x00\x00\x00\x01spc")
    info.details.update(found.facts)
    request = adapter(fairplay_asset_in_body=True).build_request(
        make_call(RENTAL, challenge=info, content_id="night-train")
    )
    assert token_of(request)["crt"]["variantId"] == "hd"
    assert parse_qs(request.body.decode())["variantId"] == ["hd"]


def test_a_widevine_service_certificate_request_names_no_asset():
    call = make_call(
        RENTAL, challenge=challenge(key_ids=(), request_type=RequestType.SERVICE_CERTIFICATE)
    )
    assert "assetId" not in token_of(adapter().build_request(call))["crt"]


def test_a_short_secret_fails_at_start_naming_the_key_never_its_value():
    registry = VendorRegistry()
    DrmTodayVendorPlugin().proxy_register_vendors(registry.register)
    backend = {"vendor": "drmtoday", "merchant": "m", "auth_key_id": "k", "auth_secret": "abcd"}
    config = ConfigContext(
        raw={"backends": {"dt": backend}},
        core=CoreConfig(),
        base_dir=Path("."),
        services=Services(),
    )
    assert registry.configure_backends(config) == {}
    [(path, message)] = config.errors
    assert path == "backends.dt" and "auth_secret" in message and "abcd" not in message


# -- the answers -------------------------------------------------------------------------


def client_info(**fields: Any) -> str:
    return base64.b64encode(json.dumps(fields).encode()).decode()


def test_the_json_widevine_answer_is_unwrapped_and_its_device_facts_kept():
    body = json.dumps(
        {
            "status": "OK",
            "license": base64.b64encode(b"\x08\x02\x12\x00").decode(),
            "make": "Google",
            "model": "Pixel 8",
            "security_level": 1,
            "system_id": 22590,
            "platform": "android",
        }
    ).encode()
    headers = {
        "x-dt-client-info": client_info(manufacturer="Google", secLevel="L1", vmpStatus="OK"),
        "x-dt-csl-renewal-info": client_info(renewalPeriod=300),
    }
    call = make_call(RENTAL)
    result = adapter().parse_response(call, response(200, body, **headers))
    assert result.license == b"\x08\x02\x12\x00"
    metadata = result.vendor_metadata
    assert metadata["drmtoday.widevine.model"] == "Pixel 8"
    assert metadata["drmtoday.widevine.security_level"] == "1"
    assert metadata["drmtoday.widevine.system_id"] == "22590"
    assert metadata["drmtoday.client_info.manufacturer"] == "Google"
    assert metadata["drmtoday.client_info.secLevel"] == "L1"
    assert metadata["drmtoday.csl_renewal_period"] == "300"
    assert len(metadata["drmtoday.log_request_id"]) == 32


def test_the_raw_spec_conform_answer_passes_as_it_is():
    call = make_call(RENTAL)
    result = adapter(widevine_spec_conform=True).parse_response(call, response())
    assert result.license == b"\x08\x02\x12\x00"


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        (b'{"status": "DENIED"}', Reason.UPSTREAM_REJECTED),
        (b'{"status": "OK", "license": "%%%"}', Reason.UPSTREAM_BAD_RESPONSE),
        (b'{"status": "OK"}', Reason.UPSTREAM_BAD_RESPONSE),
        (b'{"license": "CAI="}', Reason.UPSTREAM_BAD_RESPONSE),
        (b"<html>busy</html>", Reason.UPSTREAM_BAD_RESPONSE),
    ],
)
def test_widevine_answers_that_are_no_license(body, reason):
    with pytest.raises(ProxyError) as caught:
        adapter().parse_response(make_call(RENTAL), response(200, body))
    assert caught.value.reason is reason


@pytest.mark.parametrize("wrap", [False, True])
def test_the_fairplay_answer_is_base64_text_with_or_without_ckc_tags(wrap):
    ckc = b"CKC-bytes\x00\x01"
    text = base64.b64encode(ckc)
    body = b"<ckc>" + text + b"</ckc>" if wrap else text + b"\n"
    call = make_call(RENTAL, challenge=challenge(DrmSystem.FAIRPLAY, payload=b"spc"))
    assert adapter().parse_response(call, response(200, body)).license == ckc


def test_the_playready_answer_is_passed_unchanged():
    body = b"<soap:Envelope><AcquireLicenseResponse/></soap:Envelope>"
    call = make_call(RENTAL, challenge=challenge(DrmSystem.PLAYREADY, payload=b"<x/>"))
    assert adapter().parse_response(call, response(200, body)).license == body


@pytest.mark.parametrize("code", sorted(RESP_CODES))
def test_every_documented_response_code_is_mapped(code):
    reason, category = RESP_CODES[code]
    answer = response(
        403, b"", **{"x-dt-resp-code": str(code), "x-dt-error-message": "not_granted"}
    )
    with pytest.raises(ProxyError) as caught:
        adapter().parse_response(make_call(RENTAL), answer)
    assert caught.value.reason is reason
    assert caught.value.metadata["vendor"] == "drmtoday"
    assert caught.value.metadata["vendor_code"] == str(code)
    assert caught.value.metadata["vendor_category"] == category
    assert caught.value.metadata["vendor_message"] == "not_granted"
    assert caught.value.metadata["vendor_status"] == "403"


@pytest.mark.parametrize(
    ("status", "headers", "reason", "code"),
    [
        (503, {"x-dt-resp-code": "99999"}, Reason.UPSTREAM_UNAVAILABLE, "99999"),
        (400, {"x-dt-resp-code": "99999"}, Reason.UPSTREAM_REJECTED, "99999"),
        (500, {}, Reason.UPSTREAM_UNAVAILABLE, None),
        (307, {"Location": "https://lic2.drmtoday.com/"}, Reason.UPSTREAM_BAD_RESPONSE, None),
        (403, {"x-dt-resp-code": "not-a-number"}, Reason.UPSTREAM_REJECTED, None),
    ],
)
def test_unknown_codes_and_bare_statuses_go_by_the_status(status, headers, reason, code):
    with pytest.raises(ProxyError) as caught:
        adapter().parse_response(make_call(RENTAL), response(status, b"", **headers))
    assert caught.value.reason is reason
    assert caught.value.metadata.get("vendor_code") == code


def test_a_playready_soap_fault_without_a_code_is_read():
    fault = (
        b'<s:Envelope xmlns:s="http://schemas.xmlsoap.org/soap/envelope/"><s:Body><s:Fault>'
        b"<faultcode>s:Client</faultcode><faultstring>Device revoked</faultstring><detail>"
        b"<Exception><StatusCode>0x8004C065</StatusCode></Exception></detail></s:Fault>"
        b"</s:Body></s:Envelope>"
    )
    call = make_call(RENTAL, challenge=challenge(DrmSystem.PLAYREADY, payload=b"<x/>"))
    with pytest.raises(ProxyError) as caught:
        adapter().parse_response(call, response(500, fault))
    assert caught.value.reason is Reason.UPSTREAM_REJECTED
    assert caught.value.metadata["vendor_code"] == "0x8004C065"


# -- through the proxy to the emulator -----------------------------------------------------


@pytest.fixture
async def dt_proxy(vendor_sandbox, proxy_factory):
    config = vendor_sandbox.config(proxy_config())
    config["backends"]["drmtoday"]["timeout"] = "1s"
    return await proxy_factory(config)


def dt_token(dev_token: Any, vendor: str = "drmtoday") -> str:
    return dev_token({"sub": "alice", "vendor": vendor})


@pytest.mark.parametrize("spec_conform", [False, True])
@pytest.mark.parametrize("drm", [DrmSystem.WIDEVINE, DrmSystem.PLAYREADY, DrmSystem.FAIRPLAY])
async def test_every_drm_over_both_transports_with_zero_format_violations(
    drm, spec_conform, vendor_sandbox, proxy_factory, dev_token, http
):
    config = vendor_sandbox.config(proxy_config())
    config["backends"]["drmtoday"]["widevine_spec_conform"] = spec_conform
    proxy = await proxy_factory(config)
    emulator = vendor_sandbox["drmtoday"]
    body, content_id = challenge_for(drm)
    reply, info, code = await grpc_license(
        proxy, dt_token(dev_token), drm.value, body, content_id=content_id
    )
    assert code is grpc.StatusCode.OK, info
    facts = license_facts(drm.value, reply.license)
    assert facts["vendor"] == "drmtoday" and facts["merchant"] == "sandbox-merchant"
    assert facts["profile"] == {
        "type": "rental",
        "relativeExpiration": "P2D",
        "playDuration": "PT4H",
    }
    assert reply.vendor_metadata["drmtoday.client_info.manufacturer"] == "Emulated"
    if drm is DrmSystem.WIDEVINE:
        assert facts["op"] == {
            "config": {"HD": {"WidevineM": {"minSL": 3, "requireHDCP": "HDCP_V1"}}}
        }
        widevine_model = reply.vendor_metadata.get("drmtoday.widevine.model")
        assert widevine_model == (None if spec_conform else "emulated-cdm")
    status, _, license_bytes, problem = await http_license(
        proxy, http, dt_token(dev_token), drm.value, body, content_id=content_id
    )
    assert status == 200, problem
    assert license_facts(drm.value, license_bytes)["vendor"] == "drmtoday"
    assert emulator.state.violations == []
    assert len(emulator.state.received) == 2


async def test_certificate_and_renewal_go_through_without_violations(
    vendor_sandbox, dt_proxy, dev_token
):
    token = dt_token(dev_token)
    reply, info, code = await grpc_license(dt_proxy, token, "widevine", b"\x08\x04")
    assert code is grpc.StatusCode.OK, info
    renewal = samples.widevine_license_request(form="existing_license", request_type=2)
    reply, info, code = await grpc_license(
        dt_proxy, token, "widevine", renewal, content_id="movie-1"
    )
    assert code is grpc.StatusCode.OK, info
    assert license_facts("widevine", reply.license)["request_type"] == "renewal"
    assert vendor_sandbox["drmtoday"].state.violations == []


async def test_a_drmtoday_key_uri_reaches_the_crt(vendor_sandbox, proxy_factory, dev_token, http):
    config = vendor_sandbox.config(proxy_config())
    config["challenge"] = {"fairplay": {"content_id_convention": "drmtoday"}}
    proxy = await proxy_factory(config)
    status, _, ckc, problem = await http_license(
        proxy,
        http,
        dt_token(dev_token),
        "fairplay",
        samples.fairplay_form(samples.fairplay_spc()),
        content_id="skd://drmtoday?assetId=night-train&variantId=uhd",
    )
    assert status == 200, problem
    assert license_facts("fairplay", ckc)["asset"] == "night-train"
    crt = vendor_sandbox["drmtoday"].state.last.decoded["crt"]
    assert (crt["assetId"], crt["variantId"]) == ("night-train", "uhd")
    assert vendor_sandbox["drmtoday"].state.violations == []


@pytest.mark.parametrize(
    ("mode", "options", "reason", "status"),
    [
        ("slow", {"delay": 5}, "UPSTREAM_TIMEOUT", grpc.StatusCode.DEADLINE_EXCEEDED),
        ("error", {"status": 503}, "UPSTREAM_UNAVAILABLE", grpc.StatusCode.UNAVAILABLE),
        ("error", {"status": 500}, "UPSTREAM_UNAVAILABLE", grpc.StatusCode.UNAVAILABLE),
        ("reset", {}, "UPSTREAM_UNAVAILABLE", grpc.StatusCode.UNAVAILABLE),
        ("garbage", {}, "UPSTREAM_BAD_RESPONSE", grpc.StatusCode.UNAVAILABLE),
        ("reject", {}, "UPSTREAM_REJECTED", grpc.StatusCode.FAILED_PRECONDITION),
    ],
)
@pytest.mark.parametrize("drm", [DrmSystem.WIDEVINE, DrmSystem.FAIRPLAY])
async def test_every_fault_is_typed_within_the_deadline(
    drm, mode, options, reason, status, vendor_sandbox, dt_proxy, dev_token
):
    """The backend's timeout is 1 s: the slow emulator (5 s) is cut off by it."""
    vendor_sandbox["drmtoday"].fault.set(mode, **options)
    body, content_id = challenge_for(drm)
    _, info, code = await grpc_license(
        dt_proxy, dt_token(dev_token), drm.value, body, content_id=content_id, timeout=30
    )
    assert code is status
    assert info.reason == reason
    assert info.metadata["backend"] == "drmtoday"


async def test_a_refusal_reaches_the_caller_with_drmtodays_code(
    vendor_sandbox, dt_proxy, dev_token, http
):
    vendor_sandbox["drmtoday"].fault.set("reject", code="60100")
    _, info, code = await grpc_license(
        dt_proxy, dt_token(dev_token), "widevine", widevine_challenge()
    )
    assert code is grpc.StatusCode.FAILED_PRECONDITION
    assert info.reason == "UPSTREAM_REJECTED"
    assert info.metadata["vendor_code"] == "60100"
    assert info.metadata["vendor_category"] == "stream_limit_reached"
    assert info.metadata["vendor_message"] == "not_granted"
    vendor_sandbox["drmtoday"].fault.set("reject", code="90001")
    status, _, _, problem = await http_license(
        dt_proxy, http, dt_token(dev_token), "playready", playready_challenge(), content_id="m"
    )
    assert status == 403
    assert problem["reason"] == "UPSTREAM_REJECTED"
    assert problem["metadata"]["vendor_category"] == "region_prohibited"


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


async def test_an_outage_fails_over_from_drmtoday_to_axinom(
    vendor_sandbox, proxy_factory, dev_token
):
    proxy = await proxy_factory(failover_config(vendor_sandbox, "drmtoday", "axinom"))
    vendor_sandbox["drmtoday"].fault.set("error", status=502)
    reply, info, code = await grpc_license(
        proxy, dt_token(dev_token, "failover"), "widevine", widevine_challenge()
    )
    assert code is grpc.StatusCode.OK, info
    assert (reply.backend, reply.vendor) == ("axinom", "axinom")
    vendor_sandbox["drmtoday"].fault.set("reject")
    _, info, code = await grpc_license(
        proxy, dt_token(dev_token, "failover"), "widevine", widevine_challenge()
    )
    assert info.reason == "UPSTREAM_REJECTED"  # a refusal is the answer: no failover
    assert info.metadata["vendor"] == "drmtoday"


async def test_an_outage_fails_over_from_axinom_to_drmtoday(
    vendor_sandbox, proxy_factory, dev_token
):
    proxy = await proxy_factory(failover_config(vendor_sandbox, "axinom", "drmtoday"))
    vendor_sandbox["axinom"].fault.set("reset")
    reply, info, code = await grpc_license(
        proxy, dt_token(dev_token, "failover"), "playready", playready_challenge(), content_id="m"
    )
    assert code is grpc.StatusCode.OK, info
    assert reply.backend == "drmtoday"
    assert license_facts("playready", reply.license)["profile"] == {
        "type": "rental",
        "relativeExpiration": "P1D",
    }
    assert vendor_sandbox["drmtoday"].state.violations == []


async def test_a_wrong_secret_is_refused_as_drmtoday_refuses(
    vendor_sandbox, proxy_factory, dev_token
):
    config = vendor_sandbox.config(proxy_config())
    config["backends"]["drmtoday"]["auth_secret"] = "hex:" + "ab" * 32
    proxy = await proxy_factory(config)
    _, info, code = await grpc_license(proxy, dt_token(dev_token), "widevine", widevine_challenge())
    assert code is grpc.StatusCode.FAILED_PRECONDITION
    assert info.metadata["vendor_code"] == "3000"
    assert "signature" in info.metadata["vendor_message"]
    assert vendor_sandbox["drmtoday"].state.violations == [
        "POST /license-proxy-widevine/cenc/: token signature verification failed"
    ]


async def test_no_secret_or_token_reaches_a_log_or_an_answer(
    vendor_sandbox, dt_proxy, dev_token, http, caplog
):
    caplog.set_level(logging.DEBUG)
    secret = vendor_sandbox.vendors["drmtoday"].secret
    token = dt_token(dev_token)
    answers: list[str] = []
    statuses: list[int] = []
    for mode in ("none", "reject", "error", "garbage"):
        vendor_sandbox["drmtoday"].fault.set(mode, status=500)
        reply, info, _ = await grpc_license(dt_proxy, token, "widevine", widevine_challenge())
        answers.append(str(reply) + str(info))
        status, _, body, _ = await http_license(
            dt_proxy, http, token, "widevine", widevine_challenge()
        )
        answers.append(body.decode("latin-1"))
        statuses.append(status)
    assert statuses == [200, 403, 502, 502]
    minted = [r.headers["x-dt-auth-token"] for r in vendor_sandbox["drmtoday"].state.received]
    assert minted
    seen = caplog.text + "".join(answers)
    for needle in (secret.hex(), base64.b64encode(secret).decode(), *minted, token):
        assert needle not in seen
    for piece in (m.split(".")[2] for m in minted):  # the signatures alone
        assert piece not in seen


# -- the emulator holds the adapter to the documented format -----------------------------


def emulator_request(**changes: Any) -> tuple[str, bytes, dict[str, str]]:
    """A request as the adapter builds it for the emulator's merchant, then changed."""
    from plugins.vendors.drmtoday.sandbox import MERCHANT as SANDBOX_MERCHANT

    clock = Clock()  # the emulator judges tokens by the wall clock
    dt = adapter(clock, merchant=SANDBOX_MERCHANT, **changes.pop("settings", {}))
    call = make_call(RENTAL, clock, content_id="m", challenge=changes.pop("challenge", None))
    request = dt.build_request(call)
    headers = {**request.headers, **changes.pop("headers", {})}
    for name in changes.pop("drop", ()):
        headers.pop(name)
    return request.url, changes.pop("body", request.body), headers


@pytest.mark.parametrize(
    ("case", "code"),
    [
        ({"drop": ["x-dt-auth-token"]}, "3000"),
        ({"headers": {"Content-Type": "text/plain"}}, "10001"),
        (
            {"headers": {"x-dt-custom-data": base64.b64encode(b'{"merchant":"x"}').decode()}},
            "10001",
        ),
        ({"settings": {"auth_key_id": "unknown-kid"}}, "3000"),
        ({"settings": {"crt_ref": [""]}}, "3000"),
        (
            {
                "challenge": challenge(DrmSystem.FAIRPLAY, payload=b"\xfb\xff" * 30),
                "body": b"spc=" + base64.b64encode(b"\xfb\xff" * 30),
            },
            "10001",
        ),
        (
            {
                "challenge": challenge(DrmSystem.PLAYREADY, payload=b"<AcquireLicense/>"),
                "drop": ["SOAPAction"],
            },
            "10001",
        ),
    ],
)
async def test_the_emulator_refuses_and_records_what_breaks_the_format(case, code, http):
    from plugins.vendors.drmtoday import emulator as dt_emulator
    from plugins.vendors.drmtoday.sandbox import MERCHANT as SANDBOX_MERCHANT
    from proxy.testing.emulator import serving

    app = dt_emulator.make_app(SANDBOX_MERCHANT, {KEY_ID: SECRET})
    async with serving(app) as running:
        url, body, headers = emulator_request(**case)
        target = running.url + urlsplit(url).path + "?" + urlsplit(url).query
        async with http.post(target, data=body, headers=headers) as answer:
            assert answer.status in (400, 403)
            assert answer.headers["x-dt-resp-code"] == code
        assert len(running.state.violations) == 1


async def test_the_emulator_refuses_a_replayed_token(http):
    from plugins.vendors.drmtoday import emulator as dt_emulator
    from plugins.vendors.drmtoday.sandbox import MERCHANT as SANDBOX_MERCHANT
    from proxy.testing.emulator import serving

    async with serving(dt_emulator.make_app(SANDBOX_MERCHANT, {KEY_ID: SECRET})) as running:
        url, body, headers = emulator_request()
        target = running.url + urlsplit(url).path
        statuses = []
        for _ in range(2):
            async with http.post(target, data=body, headers=headers) as answer:
                statuses.append(answer.status)
        assert statuses == [200, 403]
        assert running.state.violations == [
            "POST /license-proxy-widevine/cenc/: the token was used before (jti)"
        ]


def test_every_setting_is_in_the_docs_section():
    from proxy import UpstreamSettings

    doc = (Path(__file__).parent.parent / "docs" / "vendors.md").read_text(encoding="utf-8")
    section = doc.split("\n## drmtoday\n", 1)[1].split("\n## ", 1)[0]
    for name in set(DrmTodaySettings.model_fields) - set(UpstreamSettings.model_fields):
        assert f"| `{name}` |" in section, name


async def test_the_device_facts_reach_the_decision_log(
    vendor_sandbox, proxy_factory, dev_token, tmp_path
):
    config = vendor_sandbox.config(proxy_config())
    config["audit"] = {"file": str(tmp_path / "decisions.jsonl")}
    proxy = await proxy_factory(config)
    reply, info, _ = await grpc_license(
        proxy, dt_token(dev_token), "widevine", widevine_challenge()
    )
    assert info is None
    assert await asyncio.to_thread(proxy.pipeline.services.audit.flush, 30)
    [record] = [
        json.loads(line) for line in (tmp_path / "decisions.jsonl").read_text().splitlines()
    ]
    assert record["vendor_device"] == {
        "make": "Emulated",
        "model": "emulated-cdm",
        "security_level": "3",
    }
    assert reply.vendor_metadata["device.make"] == "Emulated"
