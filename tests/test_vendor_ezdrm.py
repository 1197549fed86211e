"""The EZDRM adapter against EZDRM's documented wire format (VENDOR_FACTS 11): with no network,
then through the proxy to the emulator over both transports, faults and failover included."""

from __future__ import annotations

import base64
import logging
import re
import uuid
from pathlib import Path
from typing import Any

import grpc
import pytest

from plugins.vendors.ezdrm import EzdrmAdapter, EzdrmSettings
from plugins.vendors.ezdrm import emulator as ezdrm_emulator
from plugins.vendors.ezdrm.fairplay import CONVENTION, content_id
from proxy.builder import build_pipeline
from proxy.challenge import samples
from proxy.challenge.fairplay import parse_fairplay, read_content_id
from proxy.errors import ConfigError, ProxyError, Reason
from proxy.model import DrmSystem, RequestType
from proxy.services import Services
from proxy.testing import FakeClock, proxy_config
from proxy.testing.emulator import license_facts, playready_fault, serving
from tests.test_vendor_common import RENTAL, challenge, make_call, response
from tests.test_vendor_integration import challenge_for, grpc_license, http_license

DATA = Path(__file__).parent / "data" / "ezdrm"
PX = {"widevine": "BF9CEB", "playready": "ED14D7"}


def adapter(**settings: Any) -> EzdrmAdapter:
    doc = {"vendor": "ezdrm", "px": dict(PX), "policy_enforced_by_vendor": True, **settings}
    return EzdrmAdapter("ez", EzdrmSettings.model_validate(doc), Services(clock=FakeClock()))


def fairplay_call(key_uri: str | None, policy: dict[str, Any] = RENTAL) -> Any:
    spc = samples.fairplay_spc()
    info = challenge(DrmSystem.FAIRPLAY, key_ids=(), payload=spc)
    return make_call(policy, challenge=info, content_id=key_uri)


# -- the request, with no network ------------------------------------------------------


def test_widevine_goes_raw_to_the_profile_url_with_no_token():
    call = make_call(RENTAL)
    request = adapter().build_request(call)
    assert request.url == "https://widevine-dash.ezdrm.com/proxy?pX=BF9CEB"
    assert request.body == call.challenge.payload
    assert request.headers == {"Content-Type": "application/octet-stream"}


def test_playready_goes_as_soap_to_its_own_profile():
    info = challenge(DrmSystem.PLAYREADY, payload=b"<soap>AcquireLicense</soap>")
    request = adapter().build_request(make_call(RENTAL, challenge=info))
    assert request.url == "https://playready.ezdrm.com/cency/preauth.aspx?pX=ED14D7"
    assert request.headers["Content-Type"] == "text/xml; charset=utf-8"
    assert request.headers["SOAPAction"].endswith('AcquireLicense"')


def test_the_fairplay_vector_gives_the_documented_license_url():
    """VENDOR_FACTS 11.6: the CPIX key URI of Qencode's EZDRM tutorial."""
    vector = (DATA / "qencode_cpix_uri_ext_x_key.txt").read_text().split()[0]
    key_uri = base64.b64decode(vector).decode()
    assert key_uri == "skd://fps.ezdrm.com/;297f600f-1234-1234-b060-2ac13cc42585"
    assert content_id(key_uri) == "297f600f-1234-1234-b060-2ac13cc42585"
    request = adapter().build_request(fairplay_call(key_uri))
    assert request.url == (
        "https://fps.ezdrm.com/api/licenses/297f600f-1234-1234-b060-2ac13cc42585"
    )
    assert request.body[:4] == b"\x00\x00\x00\x01"  # the raw SPC
    assert request.headers == {"Content-Type": "application/octet-stream"}
    assert "pX" not in request.url


def test_the_ezdrm_convention_reads_the_vector_where_the_generic_one_would_not():
    key_uri = "skd://fps.ezdrm.com/;297f600f-1234-1234-b060-2ac13cc42585"
    found = read_content_id(key_uri, CONVENTION)
    assert found.content_id == "297f600f-1234-1234-b060-2ac13cc42585"
    assert found.key_id == uuid.UUID("297f600f-1234-1234-b060-2ac13cc42585").bytes
    assert read_content_id(key_uri).content_id.startswith(";")  # generic: the last segment
    parsed = parse_fairplay(samples.fairplay_spc(), content_id=key_uri, convention=CONVENTION)
    assert parsed.key_ids == (found.key_id,)


def test_fairplay_without_a_content_id_is_request_invalid():
    with pytest.raises(ProxyError) as raised:
        adapter().build_request(fairplay_call(None))
    assert raised.value.reason is Reason.REQUEST_INVALID


def test_the_elected_policy_picks_its_own_profile():
    settings = {"policy_px": {"rental": {"widevine": "1D331C"}}}
    assert "pX=1D331C" in adapter(**settings).build_request(make_call(RENTAL)).url
    other = {**RENTAL, "name": "other"}
    assert "pX=BF9CEB" in adapter(**settings).build_request(make_call(other)).url
    answer = adapter(**settings).parse_response(make_call(RENTAL), response())
    assert answer.vendor_metadata == {"ezdrm.px": "1D331C"}


def test_custom_data_and_user_id_go_only_where_asked():
    secret = "tenant-shared-value"
    ez = adapter(custom_data=secret, user_id_param="user_id")
    url = ez.build_request(make_call(RENTAL)).url
    assert f"CustomData={base64.b64encode(secret.encode()).decode().replace('=', '%3D')}" in url
    assert url.endswith("&user_id=alice")
    playready = challenge(DrmSystem.PLAYREADY, payload=b"<soap>AcquireLicense</soap>")
    url = ez.build_request(make_call(RENTAL, challenge=playready)).url
    assert "CustomData" not in url and secret not in url


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"px": {"fairplay": "BF9CEB"}}, "takes no pX"),
        ({"policy_px": {"p": {"playready": "ED14D7"}}, "px": {"widevine": "BF9CEB"}}, "give px"),
        ({"urls": {"fairplay": "https://fps.ezdrm.com/api/licenses/"}}, "{content_id}"),
        ({"urls": {"widevine": "https://w.example/proxy?pX=AAAAAA"}}, "not the URL"),
        ({"px": {"widevine": "BF9 CEB"}}, "pattern"),
    ],
)
def test_bad_settings_fail_at_start(settings, message):
    with pytest.raises(ValueError, match=re.escape(message)):
        EzdrmSettings.model_validate({"vendor": "ezdrm", "px": dict(PX), **settings})


def test_a_drm_without_a_profile_is_not_served():
    ez = adapter(px={"widevine": "BF9CEB"})
    assert ez.drm_systems == {DrmSystem.WIDEVINE, DrmSystem.FAIRPLAY}
    info = challenge(DrmSystem.PLAYREADY, payload=b"<soap>AcquireLicense</soap>")
    with pytest.raises(ProxyError) as raised:
        ez.build_request(make_call(RENTAL, challenge=info))
    assert raised.value.reason is Reason.DRM_NOT_SUPPORTED


# -- the policy: the profile enforces it, or the start fails ----------------------------


def ezdrm_config(policy: dict[str, Any], **backend: Any) -> dict[str, Any]:
    config = proxy_config()
    config["backends"]["ez"] = {"vendor": "ezdrm", "px": dict(PX), **backend}
    config["policies"].append({**policy, "name": "ez", "backends": ["ez"]})
    return config


def test_a_restricting_policy_fails_the_start_unless_the_profile_enforces_it():
    with pytest.raises(ConfigError) as raised:
        build_pipeline(ezdrm_config(RENTAL))
    errors = dict(raised.value.errors)
    message = errors["policies[1].license.license_duration"]
    assert "backend 'ez' (ezdrm) for widevine, playready, fairplay can't render this" in message
    assert "pX profile" in message and "policy_enforced_by_vendor" in message
    assert build_pipeline(ezdrm_config(RENTAL, policy_enforced_by_vendor=True))


def test_policy_px_must_name_a_configured_policy():
    config = ezdrm_config(
        {"license": {"can_play": True}},
        policy_px={"ez": {"widevine": "1D331C"}, "rentl": {"widevine": "2E442D"}},
    )
    with pytest.raises(ConfigError) as raised:
        build_pipeline(config)
    assert dict(raised.value.errors) == {
        "backends.ez.policy_px.rentl": "no policy is named 'rentl'"
    }


def test_a_policy_forbidding_playback_is_refused_before_ezdrm_is_asked():
    forbids = {**RENTAL, "license": {"can_play": False}}
    with pytest.raises(ProxyError) as raised:
        adapter().build_request(make_call(forbids))
    assert raised.value.metadata["vendor_code"] == "POLICY_FORBIDS_PLAY"


# -- the answers, with no network -----------------------------------------------------


def test_a_playready_fault_keeps_its_status_code():
    info = challenge(DrmSystem.PLAYREADY, payload=b"<soap>AcquireLicense</soap>")
    call = make_call(RENTAL, challenge=info)
    fault = playready_fault("0x8004C065", "revoked")
    with pytest.raises(ProxyError) as raised:
        adapter().parse_response(call, response(500, fault))
    assert raised.value.reason is Reason.UPSTREAM_REJECTED
    assert raised.value.metadata["vendor_code"] == "0x8004C065"
    server = playready_fault("0x8004C600", "internal")
    with pytest.raises(ProxyError) as raised:
        adapter().parse_response(call, response(500, server))
    assert raised.value.reason is Reason.UPSTREAM_UNAVAILABLE


@pytest.mark.parametrize(
    ("status", "reason"),
    [
        (403, Reason.UPSTREAM_REJECTED),
        (401, Reason.UPSTREAM_REJECTED),
        (503, Reason.UPSTREAM_UNAVAILABLE),
    ],
)
def test_other_errors_are_judged_by_status_and_their_body_stays_in_the_log(status, reason, caplog):
    body = b"Invalid pX BF9CEB for user alice@example.com token=eyJhbGciOi.eyJzdWIiOi.c2ln"
    with (
        caplog.at_level(logging.INFO, "plugins.vendors"),
        pytest.raises(ProxyError) as raised,
    ):
        adapter().parse_response(make_call(RENTAL), response(status, body, Retry_After="1"))
    assert raised.value.reason is reason
    assert raised.value.metadata["vendor_status"] == str(status)
    assert "vendor_message" not in raised.value.metadata
    assert "eyJhbGciOi" not in caplog.text and "[redacted]" in caplog.text


@pytest.mark.parametrize(
    ("drm", "body"),
    [
        (DrmSystem.FAIRPLAY, b"<html>gateway</html>"),
        (DrmSystem.FAIRPLAY, b'{"error": "no"}'),
        (DrmSystem.FAIRPLAY, b""),
        (DrmSystem.WIDEVINE, b"not a license"),
        (DrmSystem.PLAYREADY, b"<html/>"),
    ],
)
def test_an_answer_that_is_no_license_is_a_bad_response(drm, body):
    payload = samples.fairplay_spc() if drm is DrmSystem.FAIRPLAY else b"<soap>AcquireLicense"
    info = challenge(drm, payload=payload)
    call = make_call(RENTAL, challenge=info, content_id="skd://fps.ezdrm.com/;" + str(uuid.uuid4()))
    with pytest.raises(ProxyError) as raised:
        adapter().parse_response(call, response(200, body))
    assert raised.value.reason is Reason.UPSTREAM_BAD_RESPONSE


def test_a_raw_ckc_is_the_license():
    call = fairplay_call("skd://fps.ezdrm.com/;" + str(uuid.uuid4()))
    ckc = b"\x00\x00\x00\x01" + bytes(range(64))
    assert adapter().parse_response(call, response(200, ckc)).license == ckc


# -- the emulator checks what it gets ---------------------------------------------------


async def test_the_emulator_refuses_and_records_what_breaks_the_format(http):
    app = ezdrm_emulator.make_app({"widevine": {"BF9CEB"}})
    async with serving(app) as emulator:
        wv = samples.widevine_license_request(key_ids=[uuid.uuid4().bytes])
        octet = {"Content-Type": "application/octet-stream"}
        cases = [
            ("/proxy?pX=bf9ceb", wv, octet, "6 upper-case hex"),
            ("/proxy?pX=AAAAAA", wv, octet, "no widevine profile"),
            ("/proxy?pX=BF9CEB", wv, {**octet, "Authorization": "Bearer t"}, "Authorization"),
            ("/proxy?pX=BF9CEB", b"junk", octet, "no Widevine license request"),
            ("/api/licenses/movie-1", samples.fairplay_spc(), octet, "KID GUID"),
            (f"/api/licenses/{uuid.uuid4()}?pX=BF9CEB", samples.fairplay_spc(), octet, "no pX"),
        ]
        for path, body, headers, expected in cases:
            async with http.post(emulator.url + path, data=body, headers=headers) as answer:
                assert answer.status == 403, path
                assert expected in await answer.text()
        assert len(ezdrm_emulator.violations(app)) == len(cases)
        async with http.post(emulator.url + "/proxy?pX=BF9CEB", data=wv, headers=octet) as answer:
            assert answer.status == 200
        assert len(ezdrm_emulator.violations(app)) == len(cases)


# -- through the proxy ---------------------------------------------------------------


@pytest.fixture
async def ezdrm_proxy(vendor_sandbox, proxy_factory):
    return await proxy_factory(vendor_sandbox.config(proxy_config()))


@pytest.mark.parametrize("drm", [DrmSystem.WIDEVINE, DrmSystem.PLAYREADY, DrmSystem.FAIRPLAY])
async def test_every_drm_over_both_transports_with_zero_violations(
    drm, vendor_sandbox, ezdrm_proxy, dev_token, http
):
    token = dev_token({"sub": "alice", "vendor": "ezdrm"})
    body, content = challenge_for(drm)
    if drm is DrmSystem.FAIRPLAY:
        content = "skd://fps.ezdrm.com/;" + content.removeprefix("skd://")
    result, info, code = await grpc_license(ezdrm_proxy, token, drm.value, body, content_id=content)
    assert code is grpc.StatusCode.OK, info
    status, _, license_bytes, problem = await http_license(
        ezdrm_proxy, http, token, drm.value, body, content_id=content
    )
    assert status == 200, problem
    emulator = vendor_sandbox["ezdrm"]
    for answer in (result.license, license_bytes):
        facts = license_facts(drm.value, answer)
        assert facts["vendor"] == "ezdrm"
        if drm is DrmSystem.FAIRPLAY:
            assert facts["content_id"] == content.rpartition(";")[2]
        else:
            assert facts["px"] == vendor_sandbox.vendors["ezdrm"].px[drm.value]
    if drm is not DrmSystem.FAIRPLAY:
        assert result.vendor_metadata["ezdrm.px"] == vendor_sandbox.vendors["ezdrm"].px[drm.value]
    assert ezdrm_emulator.violations(emulator.app) == []
    for received in emulator.state.received:
        assert "Authorization" not in received.headers
        assert token not in received.path and token not in str(received.query)


@pytest.mark.parametrize(
    ("mode", "options", "settings", "reason"),
    [
        ("slow", {"delay": 5}, {"timeout": "300ms"}, "UPSTREAM_TIMEOUT"),
        ("error", {"status": 500}, {}, "UPSTREAM_UNAVAILABLE"),
        ("error", {"status": 503, "retry_after": "30"}, {}, "UPSTREAM_UNAVAILABLE"),
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
    config["backends"]["ezdrm"].update(settings)
    proxy = await proxy_factory(config)
    vendor_sandbox["ezdrm"].fault.set(mode, **options)
    body, content = challenge_for(drm)
    token = dev_token({"sub": "alice", "vendor": "ezdrm"})
    _, info, _ = await grpc_license(proxy, token, drm.value, body, content_id=content, timeout=10)
    assert info.reason == reason
    assert info.metadata["backend"] == "ezdrm"


async def test_a_caller_deadline_shorter_than_the_backend_timeout_is_kept(
    vendor_sandbox, ezdrm_proxy, dev_token
):
    vendor_sandbox["ezdrm"].fault.set("slow", delay=5)
    token = dev_token({"sub": "alice", "vendor": "ezdrm"})
    body, _ = challenge_for(DrmSystem.WIDEVINE)
    _, _, code = await grpc_license(ezdrm_proxy, token, "widevine", body, timeout=0.5)
    assert code is grpc.StatusCode.DEADLINE_EXCEEDED


async def test_ezdrms_refusal_reaches_the_caller_with_its_code(
    vendor_sandbox, ezdrm_proxy, dev_token, http
):
    vendor_sandbox["ezdrm"].fault.set("reject", code="0x8004C065")
    token = dev_token({"sub": "alice", "vendor": "ezdrm"})
    body, content = challenge_for(DrmSystem.PLAYREADY)
    _, info, code = await grpc_license(ezdrm_proxy, token, "playready", body, content_id=content)
    assert code is grpc.StatusCode.FAILED_PRECONDITION
    assert info.reason == "UPSTREAM_REJECTED"
    assert info.metadata["vendor_code"] == "0x8004C065"
    status, _, _, problem = await http_license(
        ezdrm_proxy, http, token, "widevine", challenge_for(DrmSystem.WIDEVINE)[0]
    )
    assert status == 403 and problem["metadata"]["vendor_status"] == "403"


def failover_config(sandbox: Any, backends: list[str]) -> dict[str, Any]:
    config = sandbox.config(proxy_config())
    config["policies"].append(
        {
            "name": "failover",
            "priority": 20,
            "match": {"claims": {"vendor": "failover"}},
            "backends": backends,
            "license": {"can_play": True},
        }
    )
    return config


@pytest.mark.parametrize("mode", ["reset", "error"])
async def test_an_ezdrm_outage_fails_over_to_axinom_and_back(
    mode, vendor_sandbox, proxy_factory, dev_token
):
    proxy = await proxy_factory(failover_config(vendor_sandbox, ["ezdrm", "axinom"]))
    token = dev_token({"sub": "alice", "vendor": "failover"})
    body, content = challenge_for(DrmSystem.WIDEVINE)
    vendor_sandbox["ezdrm"].fault.set(mode, times=1)
    result, info, code = await grpc_license(proxy, token, "widevine", body, content_id=content)
    assert code is grpc.StatusCode.OK, info
    assert (result.backend, license_facts("widevine", result.license)["vendor"]) == (
        "axinom",
        "axinom",
    )
    result, _, _ = await grpc_license(proxy, token, "widevine", body, content_id=content)
    assert result.backend == "ezdrm"


async def test_nothing_secret_reaches_a_log_or_an_answer(
    vendor_sandbox, proxy_factory, dev_token, http, caplog, monkeypatch
):
    secret = "ezdrm-custom-" + uuid.uuid4().hex
    monkeypatch.setenv("EZDRM_CUSTOM_DATA", secret)
    config = vendor_sandbox.config(proxy_config())
    config["backends"]["ezdrm"]["custom_data"] = "env:EZDRM_CUSTOM_DATA"
    proxy = await proxy_factory(config)
    token = dev_token({"sub": "alice", "vendor": "ezdrm"})
    encoded = base64.b64encode(secret.encode()).decode()
    body, _ = challenge_for(DrmSystem.WIDEVINE)
    seen = []
    with caplog.at_level(logging.DEBUG):
        result, _, _ = await grpc_license(proxy, token, "widevine", body)
        seen.append(str(result))
        assert vendor_sandbox["ezdrm"].state.last.query["CustomData"] == encoded
        for mode in ("reject", "garbage", "error"):
            vendor_sandbox["ezdrm"].fault.set(mode)
            _, info, _ = await grpc_license(proxy, token, "widevine", body)
            seen.append(str(info))
            _, _, answer, _ = await http_license(proxy, http, token, "widevine", body)
            seen.append(answer.decode(errors="replace"))
    for text in [*seen, caplog.text]:
        assert secret not in text and encoded not in text and token not in text


async def test_a_renewal_and_a_certificate_request_reach_the_profile(
    vendor_sandbox, ezdrm_proxy, dev_token
):
    token = dev_token({"sub": "alice", "vendor": "ezdrm"})
    renewal = samples.widevine_license_request(form="existing_license", request_type=2)
    result, info, _ = await grpc_license(ezdrm_proxy, token, "widevine", renewal)
    assert info is None
    assert license_facts("widevine", result.license)["request_type"] == RequestType.RENEWAL
    result, info, _ = await grpc_license(ezdrm_proxy, token, "widevine", b"\x08\x04")
    assert info is None and result.license.startswith(b"\x08\x05")
    assert ezdrm_emulator.violations(vendor_sandbox["ezdrm"].app) == []
