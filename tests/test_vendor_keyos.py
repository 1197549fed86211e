"""The BuyDRM KeyOS adapter against KeyOS's documented wire format (VENDOR_FACTS 12): the signed
Authentication XML it mints, each DRM's framing, KeyOS's answers; then through the proxy to the
emulator over both transports, faults and failover included."""

from __future__ import annotations

import base64
import logging
import re
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs
from xml.etree.ElementTree import canonicalize

import grpc
import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa

from plugins.vendors.keyos import KeyOSAdapter, KeyOSSettings, authxml
from plugins.vendors.keyos import emulator as keyos_emulator
from plugins.vendors.keyos.authcheck import (
    AuthXmlRefused,
    check_authentication_xml,
    check_data,
    read_authentication_xml,
)
from proxy.builder import build_pipeline
from proxy.challenge import samples
from proxy.errors import ConfigError, ProxyError, Reason
from proxy.model import DrmSystem, Principal, RequestType
from proxy.policy import TrackRules
from proxy.services import Services
from proxy.testing import FakeClock, proxy_config
from proxy.testing.emulator import license_facts, playready_fault, serving
from tests.test_vendor_common import (
    KID_AUDIO,
    KID_HD,
    KID_SD,
    KID_UHD,
    challenge,
    make_call,
    response,
)
from tests.test_vendor_integration import challenge_for, grpc_license, http_license

DATA = Path(__file__).parent / "data" / "keyos"
KEY = rsa.generate_private_key(public_exponent=0x10001, key_size=2048)
PEM = KEY.private_bytes(
    serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
)
KEY_HASH = "7e11400c7dccd29d0174c674397d99dd"
NOW = FakeClock().time()
GUIDS = {k: str(uuid.UUID(bytes=k)) for k in (KID_SD, KID_HD, KID_UHD, KID_AUDIO)}

#: A rental KeyOS can carry: no playback window, the rental folded into LicenseDuration.
RENTAL = {
    "name": "rental",
    "backends": ["b"],
    "license": {
        "can_play": True,
        "persistent": False,
        "license_duration": "2d",
        "rental_duration": "1d",
    },
    "tracks": {
        "SD": {"widevine_security_level": 1, "hdcp": "NONE", "playready_min_security_level": 2000},
        "HD": {
            "widevine_security_level": "HW_SECURE_DECODE",
            "hdcp": "V2",
            "cgms_a": "COPY_NEVER",
            "playready_min_security_level": 3000,
            "playready_output_protection": {"compressed_digital_video": 500},
        },
    },
}
SPLIT = {**RENTAL, "name": "split", "allowed_track_types": ["AUDIO", "SD", "HD"]}


def adapter(clock: FakeClock | None = None, **settings: Any) -> KeyOSAdapter:
    doc = {
        "vendor": "keyos",
        "signing_key": "base64:" + base64.b64encode(PEM).decode(),
        "rsa_pub_key_id": KEY_HASH,
        **settings,
    }
    services = Services(clock=clock or FakeClock())
    return KeyOSAdapter("ko", KeyOSSettings.model_validate(doc), services)


def sent_xml(request: Any, header: str = "customdata") -> str:
    return base64.b64decode(request.headers[header]).decode("utf-8")


def data_text(request: Any, header: str = "customdata") -> str:
    """The ``<Data>`` element as sent, after checking its signature by hand (RSA-SHA1 PKCS#1
    v1.5 over those exact bytes: the adapter's default)."""
    xml = sent_xml(request, header)
    match = re.fullmatch(
        r"<KeyOSAuthenticationXML>(<Data>.*</Data>)<Signature>([A-Za-z0-9+/=]+)</Signature>"
        r"</KeyOSAuthenticationXML>",
        xml,
    )
    assert match, xml
    signature = base64.b64decode(match[2])
    assert len(signature) == 256
    # SHA-1: the digest KeyOS is commonly said to use (the adapter's UNVERIFIED default).
    KEY.public_key().verify(signature, match[1].encode(), padding.PKCS1v15(), hashes.SHA1())  # noqa: S303
    return match[1]


def times(clock: FakeClock) -> str:
    return (
        f"<GenerationTime>{authxml.keyos_time(clock.time())}</GenerationTime>"
        f"<ExpirationTime>{authxml.keyos_time(clock.time() + 60)}</ExpirationTime>"
    )


# -- the Authentication XML, with no network -------------------------------------------


def test_widevine_xml_element_by_element():
    clock = FakeClock()
    call = make_call(RENTAL, clock)
    request = adapter(clock).build_request(call)
    assert request.url == "https://wv-keyos.licensekeyserver.com/"
    assert request.body == call.challenge.payload
    assert request.headers["Content-Type"] == "application/octet-stream"
    assert set(request.headers) == {"Content-Type", "customdata"}
    data = data_text(request)
    unique_id = re.search(r"<UniqueId>([0-9a-f]{32})</UniqueId>", data)[1]
    spec = '<WidevineContentKeySpec TrackType="{}">{}</WidevineContentKeySpec>'
    sd = "<SecurityLevel>1</SecurityLevel><RequiredHDCP>HDCP_NONE</RequiredHDCP>"
    hd = (
        "<SecurityLevel>4</SecurityLevel><RequiredHDCP>HDCP_V2</RequiredHDCP>"
        "<RequiredCGMS>COPY_NEVER</RequiredCGMS>"
    )
    assert data == (
        f"<Data>{times(clock)}<UniqueId>{unique_id}</UniqueId>"
        f"<RSAPubKeyId>{KEY_HASH}</RSAPubKeyId>"
        '<WidevinePolicy fl_CanPlay="true" fl_CanPersist="false">'
        "<LicenseDuration>86400</LicenseDuration></WidevinePolicy>"
        # every track type gets a spec: unlisted ones the DEFAULT (no) rules
        + spec.format("AUDIO", "").replace("></WidevineContentKeySpec>", " />")
        + spec.format("SD", sd)
        + spec.format("HD", hd)
        + spec.format("UHD1", "").replace("></WidevineContentKeySpec>", " />")
        + spec.format("UHD2", "").replace("></WidevineContentKeySpec>", " />")
        + "</Data>"
    )
    again = data_text(adapter(clock).build_request(make_call(RENTAL, clock)))
    assert unique_id not in again  # a fresh UniqueId per request


def test_the_sample_time_format_and_serialization_are_byte_identical_to_buydrms():
    """Vector 12.8: rebuilt with this package's writer, the sample's Data is the same bytes
    (element order, no whitespace, ``<Empty />``, attribute order, the time format)."""
    token = (DATA / "theoplayer_sample_x_keyos_authorization.b64").read_text().strip()
    sample_data, _, _ = read_authentication_xml(token)
    data = authxml.ET.Element("Data")
    generated = datetime(2016, 11, 19, 9, 34, 1, 992000, UTC).timestamp()
    expires = datetime(2026, 11, 19, 9, 34, 1, 992000, UTC).timestamp()
    authxml.text_element(data, "GenerationTime", authxml.keyos_time(generated))
    authxml.text_element(data, "ExpirationTime", authxml.keyos_time(expires))
    authxml.text_element(data, "UniqueId", "0fff197ad3344e329e41049202d93eec")
    authxml.text_element(data, "RSAPubKeyId", "7e11400c7dccd29d0174c674397d99dd")
    policy = authxml.ET.SubElement(data, "WidevinePolicy")
    policy.set("fl_CanPlay", "true")
    policy.set("fl_CanPersist", "false")
    spec = authxml.ET.SubElement(data, "WidevineContentKeySpec", TrackType="HD")
    authxml.text_element(spec, "SecurityLevel", 1)
    unset = make_call({"name": "x", "backends": ["b"]}).policy.license
    authxml.fairplay_section(data, unset)
    authxml.playready_section(data, make_call({"name": "x", "backends": ["b"]}).policy, [], True)
    assert authxml.serialize(data) == sample_data


def test_the_sample_passes_the_emulators_checks_until_it_expires():
    token = (DATA / "theoplayer_sample_x_keyos_authorization.b64").read_text().strip()
    assert token.startswith("PEtleU9TQXV0aGVudGljYXRpb25YTUw+PERhdGE+")
    _, data, signature = read_authentication_xml(token)
    assert len(signature) == 256  # RSA-2048
    before_expiry = datetime(2026, 11, 19, 9, 34, 1, tzinfo=UTC).timestamp()
    facts, problems = check_data(data, before_expiry)
    assert problems == []
    assert facts["widevine"] == {"can_play": True, "can_persist": False}
    assert facts["widevine_specs"] == {"HD": {"security_level": 1}}
    assert facts["fairplay"] == {"persistent": None}
    assert facts["rsa_pub_key_id"] == "7e11400c7dccd29d0174c674397d99dd"
    _, problems = check_data(data, datetime(2026, 11, 19, 9, 34, 2, tzinfo=UTC).timestamp())
    assert problems == ["the Authentication XML has expired"]
    with pytest.raises(AuthXmlRefused) as refused:
        check_authentication_xml(token, {}, "sha1", "data", before_expiry)
    assert refused.value.problems == ["RSAPubKeyId names no key registered with this account"]


@pytest.mark.parametrize(
    ("digest", "content"),
    [("sha1", "data_c14n"), ("sha256", "data"), ("sha256", "data_c14n")],
)
def test_the_unverified_signing_choices_are_settings(digest, content):
    info = challenge(DrmSystem.FAIRPLAY, key_ids=(), payload=samples.fairplay_spc())
    call = make_call(RENTAL, challenge=info, content_id="skd://asset-7")
    ko = adapter(signature_digest=digest, signed_content=content, policy_enforced_by_vendor=True)
    xml = sent_xml(ko.build_request(call))
    data = re.search(r"<Data>.*</Data>", xml)[0]
    signature = base64.b64decode(re.search(r"<Signature>(.*)</Signature>", xml)[1])
    signed = canonicalize(xml_data=data) if content == "data_c14n" else data
    if content == "data_c14n":
        assert '<FairPlayPolicy persistent="false"></FairPlayPolicy>' in signed
    algorithm = hashes.SHA1() if digest == "sha1" else hashes.SHA256()  # noqa: S303
    KEY.public_key().verify(signature, signed.encode(), padding.PKCS1v15(), algorithm)
    facts = check_authentication_xml(
        base64.b64encode(xml.encode()).decode(),
        {KEY_HASH: KEY.public_key()},
        digest,
        content,
        NOW,
    )
    assert facts["fairplay"] == {"persistent": False}


def test_a_policy_forbidding_playback_says_so_in_widevine_policy():
    forbids = {**RENTAL, "license": {"can_play": False, "persistent": True}}
    data = data_text(adapter().build_request(make_call(forbids)))
    assert '<WidevinePolicy fl_CanPlay="false" fl_CanPersist="true" />' in data
    info = challenge(DrmSystem.FAIRPLAY, key_ids=(), payload=samples.fairplay_spc())
    call = make_call(forbids, challenge=info, content_id="skd://asset-7")
    with pytest.raises(ProxyError) as raised:  # FairPlayPolicy has no such flag
        adapter(policy_enforced_by_vendor=True).build_request(call)
    assert raised.value.metadata["vendor_code"] == "POLICY_FORBIDS_PLAY"


def test_the_header_can_be_theoplayers():
    request = adapter(auth_header="x-keyos-authorization").build_request(make_call(RENTAL))
    assert "customdata" not in request.headers
    assert data_text(request, "x-keyos-authorization").startswith("<Data>")


def test_playready_licenses_per_key_share_equal_rules():
    keys = (KID_SD, KID_HD, KID_UHD)
    info = challenge(DrmSystem.PLAYREADY, key_ids=keys, payload=b"<soap>AcquireLicense</soap>")
    request = adapter(policy_enforced_by_vendor=["playready"]).build_request(
        make_call(RENTAL, challenge=info)
    )
    assert request.url == "https://pr-keyos.licensekeyserver.com/core/rightsmanager.asmx"
    assert request.headers["SOAPAction"].endswith('AcquireLicense"')
    data = data_text(request)
    facts, problems = check_data(read_authentication_xml(request.headers["customdata"])[1], NOW)
    assert problems == []
    assert facts["playready_licenses"] == [
        {"key_id": GUIDS[KID_SD], "policy": 2000},
        {"key_id": GUIDS[KID_HD], "policy": 3000, "play": {"CompressedDigitalVideo": 500}},
        # UHD1 has no rules of its own and the policy no DEFAULT: a license with no policy
        {"key_id": GUIDS[KID_UHD]},
    ]
    assert data.count("<MinimumSecurityLevel>") == 2
    assert "<WidevinePolicy" not in data and "<FairPlayPolicy" not in data


def test_a_keys_own_rules_reach_its_playready_license():
    info = challenge(DrmSystem.PLAYREADY, key_ids=(KID_SD,), payload=b"<soap>AcquireLicense</soap>")
    call = make_call(RENTAL, challenge=info)
    call.policy.key_rules[KID_SD] = TrackRules(playready_min_security_level=3000)
    request = adapter(policy_enforced_by_vendor=["playready"]).build_request(call)
    facts, _ = check_data(read_authentication_xml(request.headers["customdata"])[1], NOW)
    assert facts["playready_licenses"] == [{"key_id": GUIDS[KID_SD], "policy": 3000}]


def test_playready_rules_need_the_keys_and_no_rules_need_nothing():
    info = challenge(DrmSystem.PLAYREADY, key_ids=(), payload=b"<soap>AcquireLicense</soap>")
    ko = adapter(policy_enforced_by_vendor=["playready"])
    with pytest.raises(ProxyError) as raised:
        ko.build_request(make_call(RENTAL, challenge=info))
    assert raised.value.reason is Reason.REQUEST_INVALID
    bare = {"name": "bare", "backends": ["b"], "license": {"can_play": True}}
    data = data_text(ko.build_request(make_call(bare, challenge=info)))
    assert data.endswith(f'<RSAPubKeyId>{KEY_HASH}</RSAPubKeyId><License type="simple" /></Data>')


def test_fairplay_goes_as_the_form_and_the_ckc_comes_back_raw():
    spc = samples.fairplay_spc()
    info = challenge(DrmSystem.FAIRPLAY, key_ids=(), payload=spc)
    call = make_call(RENTAL, challenge=info, content_id="skd://asset+7/extra?x=1")
    request = adapter(policy_enforced_by_vendor=["fairplay"]).build_request(call)
    assert request.url == "https://fp-keyos.licensekeyserver.com/getkey/"
    assert request.headers["Content-Type"] == "application/x-www-form-urlencoded"
    form = parse_qs(request.body.decode(), strict_parsing=True)
    assert form == {"spc": [base64.b64encode(spc).decode()], "assetId": ["asset+7"]}
    assert '<FairPlayPolicy persistent="false" />' in data_text(request)
    ckc = bytes(range(200))
    wrapped = b"<ckc>" + base64.b64encode(ckc) + b"</ckc>\n"
    ko = adapter()
    assert ko.parse_response(call, response(200, wrapped)).license == ckc
    assert ko.parse_response(call, response(200, base64.b64encode(ckc))).license == ckc
    upper = b"<CKC>" + base64.b64encode(ckc) + b"</CKC>"
    assert ko.parse_response(call, response(200, upper)).license == ckc
    for junk in (b"<html>oops</html>", b"<ckc>!!</ckc>", b"<ckc></ckc>", b""):
        with pytest.raises(ProxyError) as raised:
            ko.parse_response(call, response(200, junk))
        assert raised.value.reason is Reason.UPSTREAM_BAD_RESPONSE
    with pytest.raises(ProxyError) as raised:
        adapter(policy_enforced_by_vendor=True).build_request(make_call(RENTAL, challenge=info))
    assert raised.value.reason is Reason.REQUEST_INVALID


def test_restrict_keys_lists_the_allowed_keys_and_leaves_the_rest_out():
    keys = (KID_AUDIO, KID_SD, KID_HD, KID_UHD)
    call = make_call(SPLIT, challenge=challenge(key_ids=keys))
    data = data_text(adapter(restrict_keys=True).build_request(call))
    listed = re.search(r"<KeyIDList>(.*)</KeyIDList>", data)[1]
    assert listed == "".join(f"<KeyID>{GUIDS[k]}</KeyID>" for k in keys[:3])
    assert 'TrackType="UHD1"' not in data  # no spec for a disallowed type
    with pytest.raises(ProxyError) as raised:
        adapter(restrict_keys=True).build_request(make_call(SPLIT, challenge=challenge(key_ids=())))
    assert raised.value.reason is Reason.REQUEST_INVALID


def test_the_subject_is_escaped_in_username():
    principal = Principal(
        subject='</Username><WidevinePolicy fl_CanPlay="true"/>&', issuer="t", claims={}
    )
    request = adapter(send_username=True).build_request(make_call(RENTAL, principal=principal))
    data = data_text(request)
    assert data.count("<WidevinePolicy") == 1
    facts, problems = check_data(read_authentication_xml(request.headers["customdata"])[1], NOW)
    assert problems == []
    assert facts["username"] == principal.subject


# -- what KeyOS can't be told fails the start ---------------------------------------------


def keyos_config(policy: dict[str, Any], **backend: Any) -> dict[str, Any]:
    config = proxy_config()
    config["backends"]["ko"] = {
        "vendor": "keyos",
        "signing_key": "base64:" + base64.b64encode(PEM).decode(),
        "rsa_pub_key_id": KEY_HASH,
        **backend,
    }
    config["policies"].append({**policy, "name": "ko", "backends": ["ko"]})
    return config


def start_errors(config: dict[str, Any]) -> dict[str, str]:
    with pytest.raises(ConfigError) as raised:
        build_pipeline(config)
    return dict(raised.value.errors)


def test_rules_the_xml_has_no_field_for_fail_the_start_with_their_key_paths():
    policy = {
        "allowed_track_types": ["SD", "HD"],
        "license": {"persistent": False, "license_duration": "1d", "playback_duration": "4h"},
        "tracks": {"HD": {"disable_analog_output": True, "fairplay_hdcp": "TYPE1"}},
    }
    errors = start_errors(keyos_config(policy))
    assert set(errors) == {
        "policies[1].allowed_track_types",
        "policies[1].license.persistent",
        "policies[1].license.license_duration",
        "policies[1].license.playback_duration",
        "policies[1].tracks.HD.disable_analog_output",
        "policies[1].tracks.HD.fairplay_hdcp",
    }
    assert "restrict_keys" in errors["policies[1].allowed_track_types"]
    assert "for playready can't render" in errors["policies[1].license.persistent"]
    assert "widevine, playready, fairplay" in errors["policies[1].license.playback_duration"]
    assert "for playready, fairplay can't" in errors["policies[1].license.license_duration"]
    errors = start_errors(keyos_config(policy, restrict_keys=True))
    assert "policies[1].allowed_track_types" not in errors
    build_pipeline(keyos_config(policy, policy_enforced_by_vendor=True))


def test_renewal_details_are_a_warning():
    policy = {"license": {"renewal": {"enabled": True, "delay": "1h"}}}
    warnings = dict(build_pipeline(keyos_config(policy)).warnings)
    assert "the vendor's default applies" in warnings["policies[1].license.renewal.delay"]


@pytest.mark.parametrize(
    ("key", "message"),
    [
        (ec.generate_private_key(ec.SECP256R1()), "must be an RSA key"),
        # a key too weak for KeyOS, to see it refused
        (rsa.generate_private_key(public_exponent=0x10001, key_size=1024), "RSA 2048 bits"),  # noqa: S505
        (rsa.generate_private_key(public_exponent=3, key_size=2048), "0x10001"),
    ],
)
def test_a_key_keyos_would_not_import_fails_the_start_naming_only_its_reference(
    key, message, monkeypatch
):
    pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    monkeypatch.setenv("KEYOS_SIGNING_KEY", pem.decode())
    errors = start_errors(keyos_config({}, signing_key="env:KEYOS_SIGNING_KEY"))
    assert message in errors["backends.ko"] and "env:KEYOS_SIGNING_KEY" in errors["backends.ko"]
    assert "PRIVATE KEY" not in str(errors)


# -- KeyOS's answers, with no network --------------------------------------------------


def test_the_json_error_form_keeps_keyoss_code_and_message():
    body = (
        b'{"errorcode": 371000005, "errormsg": "Widevine license generation failed '
        b'(SIGNED_MESSAGE_PARSE_ERROR)", "errorid": "8c1f2b3a"}'
    )
    with pytest.raises(ProxyError) as raised:
        adapter().parse_response(make_call(RENTAL), response(403, body))
    assert raised.value.reason is Reason.UPSTREAM_REJECTED
    assert raised.value.metadata == {
        "vendor": "keyos",
        "vendor_status": "403",
        "vendor_code": "371000005",
        "vendor_message": "Widevine license generation failed (SIGNED_MESSAGE_PARSE_ERROR)",
        "vendor_error_id": "8c1f2b3a",
    }
    for status, reason in ((401, Reason.UPSTREAM_REJECTED), (500, Reason.UPSTREAM_UNAVAILABLE)):
        with pytest.raises(ProxyError) as raised:
            adapter().parse_response(make_call(RENTAL), response(status, b'{"errorcode": 7}'))
        assert raised.value.reason is reason and raised.value.metadata["vendor_code"] == "7"


def test_playready_faults_and_licenses():
    info = challenge(DrmSystem.PLAYREADY, payload=b"<soap>AcquireLicense</soap>")
    call = make_call(RENTAL, challenge=info)
    with pytest.raises(ProxyError) as raised:
        adapter().parse_response(call, response(500, playready_fault("0x8004C065", "revoked")))
    assert raised.value.metadata["vendor_code"] == "0x8004C065"
    ok = b"<soap:Envelope><AcquireLicenseResponse/></soap:Envelope>"
    assert adapter().parse_response(call, response(200, ok)).license == ok


# -- the emulator checks what it gets ---------------------------------------------------


async def test_the_emulator_refuses_and_records_what_breaks_the_format(http):
    app = keyos_emulator.make_app({KEY_HASH: KEY.public_key()})
    good = adapter(clock=FakeClock(start=time.time())).build_request(make_call(RENTAL))
    token = good.headers["customdata"]
    stranger = rsa.generate_private_key(public_exponent=0x10001, key_size=2048)
    forged_adapter = adapter(clock=FakeClock(start=time.time()))
    forged_adapter.key = stranger
    forged = forged_adapter.build_request(make_call(RENTAL)).headers["customdata"]
    xml = base64.b64decode(token).decode()
    tampered = base64.b64encode(xml.replace('fl_CanPlay="true"', 'fl_CanPlay="yes"').encode())
    wv = samples.widevine_license_request(key_ids=[KID_SD])
    cases = [
        ({}, "one KeyOS header"),
        ({"customdata": token, "x-keyos-authorization": token}, "one KeyOS header"),
        ({"customdata": forged}, "does not verify"),
        ({"customdata": tampered.decode()}, "true or false"),
        ({"customdata": base64.b64encode(b"<KeyOSAuthenticationXML/>").decode()}, "holds Data"),
        ({"customdata": "%%%"}, "base64"),
    ]
    async with serving(app) as emulator:
        for headers, expected in cases:
            async with http.post(f"{emulator.url}/widevine", data=wv, headers=headers) as answer:
                assert answer.status == 401
                error = await answer.json()
                assert error["errorcode"] == keyos_emulator.AUTH_XML_REFUSED
                assert expected in error["errormsg"]
        async with http.post(f"{emulator.url}/widevine", data=b"junk", headers=good.headers) as a:
            assert a.status == 403 and (await a.json())["errorcode"] == 371000005
        refused = [r for r in emulator.state.received if r.decoded.get("violations")]
        assert len(refused) == len(cases) + 1
        async with http.post(f"{emulator.url}/widevine", data=wv, headers=good.headers) as answer:
            assert answer.status == 200
        assert not emulator.state.last.decoded.get("violations")


# -- through the proxy ---------------------------------------------------------------


@pytest.fixture
async def keyos_proxy(vendor_sandbox, proxy_factory):
    return await proxy_factory(vendor_sandbox.config(proxy_config()))


@pytest.mark.parametrize("drm", [DrmSystem.WIDEVINE, DrmSystem.PLAYREADY, DrmSystem.FAIRPLAY])
async def test_every_drm_over_both_transports_with_zero_violations(
    drm, vendor_sandbox, keyos_proxy, dev_token, http
):
    token = dev_token({"sub": "alice", "vendor": "keyos"})
    body, content = challenge_for(drm)
    result, info, code = await grpc_license(keyos_proxy, token, drm.value, body, content_id=content)
    assert code is grpc.StatusCode.OK, info
    status, _, license_bytes, problem = await http_license(
        keyos_proxy, http, token, drm.value, body, content_id=content
    )
    assert status == 200, problem
    for answer in (result.license, license_bytes):
        facts = license_facts(drm.value, answer)
        assert facts["vendor"] == "keyos"
        assert facts["rsa_pub_key_id"] == vendor_sandbox.vendors["keyos"].key_hash
        if drm is DrmSystem.WIDEVINE:
            assert facts["widevine"] == {"can_play": True, "can_persist": False}
            assert facts["widevine_specs"]["HD"] == {
                "security_level": 3,
                "RequiredHDCP": "HDCP_V1",
            }
        elif drm is DrmSystem.PLAYREADY:
            levels = [lic.get("policy") for lic in facts["playready_licenses"]]
            assert levels == [None, None]  # the keys' types are unknown: DEFAULT has no rule
        else:
            assert facts["asset_id"] == content.removeprefix("skd://")
    assert keyos_emulator.violations(vendor_sandbox["keyos"].app) == []


@pytest.mark.parametrize(
    ("mode", "options", "settings", "reason"),
    [
        ("slow", {"delay": 5}, {"timeout": "300ms"}, "UPSTREAM_TIMEOUT"),
        ("error", {"status": 502}, {}, "UPSTREAM_UNAVAILABLE"),
        ("reset", {}, {}, "UPSTREAM_UNAVAILABLE"),
        ("garbage", {}, {}, "UPSTREAM_BAD_RESPONSE"),
        ("huge", {"size": 2 << 20}, {"max_response_bytes": 1 << 20}, "UPSTREAM_BAD_RESPONSE"),
        ("drip", {"delay": 0.05}, {"timeout": "500ms"}, "UPSTREAM_TIMEOUT"),
    ],
)
@pytest.mark.parametrize("drm", [DrmSystem.WIDEVINE, DrmSystem.FAIRPLAY])
async def test_every_fault_is_typed_within_the_deadline(
    drm, mode, options, settings, reason, vendor_sandbox, proxy_factory, dev_token
):
    config = vendor_sandbox.config(proxy_config())
    config["backends"]["keyos"].update(settings)
    proxy = await proxy_factory(config)
    vendor_sandbox["keyos"].fault.set(mode, **options)
    body, content = challenge_for(drm)
    token = dev_token({"sub": "alice", "vendor": "keyos"})
    _, info, _ = await grpc_license(proxy, token, drm.value, body, content_id=content, timeout=10)
    assert info.reason == reason
    assert info.metadata["backend"] == "keyos"


async def test_keyoss_refusal_reaches_the_caller_with_its_code(
    vendor_sandbox, keyos_proxy, dev_token, http
):
    vendor_sandbox["keyos"].fault.set("reject", code="371000005")
    token = dev_token({"sub": "alice", "vendor": "keyos"})
    body, _ = challenge_for(DrmSystem.WIDEVINE)
    _, info, code = await grpc_license(keyos_proxy, token, "widevine", body)
    assert code is grpc.StatusCode.FAILED_PRECONDITION
    assert info.metadata["vendor_code"] == "371000005"
    assert "SIGNED_MESSAGE_PARSE_ERROR" in info.metadata["vendor_message"]
    status, _, _, problem = await http_license(keyos_proxy, http, token, "widevine", body)
    assert status == 403 and problem["metadata"]["vendor_code"] == "371000005"


async def test_a_key_keyos_does_not_know_is_refused_and_nothing_secret_leaks(
    vendor_sandbox, proxy_factory, dev_token, http, caplog
):
    stranger = rsa.generate_private_key(public_exponent=0x10001, key_size=2048)
    pem = stranger.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    config = vendor_sandbox.config(proxy_config())
    config["backends"]["keyos"]["signing_key"] = "base64:" + base64.b64encode(pem).decode()
    proxy = await proxy_factory(config)
    token = dev_token({"sub": "alice", "vendor": "keyos"})
    body, _ = challenge_for(DrmSystem.WIDEVINE)
    with caplog.at_level(logging.DEBUG):
        _, info, code = await grpc_license(proxy, token, "widevine", body)
        _, _, answer, _ = await http_license(proxy, http, token, "widevine", body)
    assert code is grpc.StatusCode.FAILED_PRECONDITION
    assert (info.metadata["vendor_status"], info.metadata["vendor_code"]) == ("401", "900000401")
    sent = vendor_sandbox["keyos"].state.last.headers["customdata"]
    signature = re.search(r"<Signature>(.*)</Signature>", base64.b64decode(sent).decode())[1]
    body_b64 = base64.b64encode(pem).decode()
    for text in (str(info), answer.decode(errors="replace"), caplog.text):
        for secret in (sent, sent[:40], signature[:40], body_b64[30:90], token):
            assert secret not in text


async def test_a_keyos_outage_fails_over_to_ezdrm(vendor_sandbox, proxy_factory, dev_token):
    config = vendor_sandbox.config(proxy_config())
    config["policies"].append(
        {
            "name": "failover",
            "priority": 20,
            "match": {"claims": {"vendor": "failover"}},
            "backends": ["keyos", "ezdrm"],
            "license": {"can_play": True},
        }
    )
    proxy = await proxy_factory(config)
    token = dev_token({"sub": "alice", "vendor": "failover"})
    vendor_sandbox["keyos"].fault.set("error", status=503)
    for drm in (DrmSystem.WIDEVINE, DrmSystem.PLAYREADY):
        body, content = challenge_for(drm)
        result, info, code = await grpc_license(proxy, token, drm.value, body, content_id=content)
        assert code is grpc.StatusCode.OK, info
        assert result.backend == "ezdrm"
        assert license_facts(drm.value, result.license)["vendor"] == "ezdrm"
    assert keyos_emulator.violations(vendor_sandbox["keyos"].app) == []


async def test_a_renewal_and_a_certificate_request_carry_the_xml(
    vendor_sandbox, keyos_proxy, dev_token
):
    token = dev_token({"sub": "alice", "vendor": "keyos"})
    renewal = samples.widevine_license_request(form="existing_license", request_type=2)
    result, info, _ = await grpc_license(keyos_proxy, token, "widevine", renewal)
    assert info is None
    assert license_facts("widevine", result.license)["request_type"] == RequestType.RENEWAL
    result, info, _ = await grpc_license(keyos_proxy, token, "widevine", b"\x08\x04")
    assert info is None and result.license.startswith(b"\x08\x05")
    assert "customdata" in vendor_sandbox["keyos"].state.last.headers
    assert keyos_emulator.violations(vendor_sandbox["keyos"].app) == []
