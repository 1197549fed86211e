"""No license looser than the policy: what each backend can render is checked at start and
per request, the license window is the proxy's own, and a backend that can't serve a
request is skipped before anything is sent."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import grpc
import pytest

import proxy
from proxy.builder import build_pipeline
from proxy.challenge import samples
from proxy.errors import ConfigError, ProxyError, Reason
from proxy.model import DrmSystem, RequestType
from proxy.policy import Policy
from proxy.testing import FakeClock, proxy_config
from proxy.testing.emulator import license_facts
from tests.test_vendor_common import RENTAL, challenge, make_call
from tests.test_vendor_integration import grpc_license

KID = uuid.UUID("0a8b1c2d-3e4f-4a5b-8c6d-7e8f9a0b1c2d").bytes
PLAYREADY = samples.playready_challenge(samples.wrm_header("4.3.0.0", [KID]))
WIDEVINE = samples.widevine_license_request(key_ids=[KID])


def with_backends(
    sandbox: Any, backends: dict[str, dict[str, Any]], *policies: dict[str, Any]
) -> dict[str, Any]:
    """The embedded default plus ``backends`` and ``policies`` elected by ``vendor = "test"``."""
    config = proxy_config()
    config["backends"].update(backends)
    for policy in policies:
        config["policies"].append(
            {"priority": 10, "match": {"claims": {"vendor": "test"}}, **policy}
        )
    return config


def errors_of(config: dict[str, Any]) -> dict[str, str]:
    with pytest.raises(ConfigError) as raised:
        build_pipeline(config)
    return dict(raised.value.errors)


# -- at start --------------------------------------------------------------------------


def test_an_unrenderable_rule_is_a_config_error_with_its_key_path(vendor_sandbox):
    config = with_backends(
        vendor_sandbox,
        {"vmx": vendor_sandbox.backend("verimatrix", security_policy_drms=["widevine"])},
        {
            "name": "hd",
            "backends": ["vmx"],
            "license_overrides": {"playready": {"license_duration": "1h"}},
            "tracks": {"HD": {"playready_min_security_level": 3000}},
        },
    )
    errors = errors_of(config)
    assert set(errors) == {"policies[1].tracks.HD.playready_min_security_level"}
    assert errors["policies[1].tracks.HD.playready_min_security_level"] == (
        "backend 'vmx' (verimatrix) for playready can't render this: the license would be "
        "looser. list playready in security_policy_drms (Verimatrix's playready field names "
        "are UNVERIFIED)"
    )


def test_only_the_drms_a_policy_can_be_elected_for_are_judged(vendor_sandbox):
    config = with_backends(
        vendor_sandbox,
        {"vmx": vendor_sandbox.backend("verimatrix", security_policy_drms=["widevine"])},
        {
            "name": "hd",
            "backends": ["vmx"],
            "match": {"claims": {"vendor": "test"}, "drm_systems": ["widevine"]},
            "tracks": {"HD": {"playready_min_security_level": 3000}},
        },
    )
    build_pipeline(config)


def test_an_override_is_named_by_its_own_path(vendor_sandbox):
    config = with_backends(
        vendor_sandbox,
        {"ams": vendor_sandbox.backend("azure", policy_enforced_by_vendor=["widevine"])},
        {
            "name": "r",
            "backends": ["ams"],
            "license_overrides": {"fairplay": {"license_duration": "1h"}},
        },
    )
    errors = errors_of(config)
    assert set(errors) == {"policies[1].license_overrides.fairplay.license_duration"}
    assert "for fairplay" in errors["policies[1].license_overrides.fairplay.license_duration"]


def test_a_rule_that_restricts_nothing_is_a_warning(vendor_sandbox):
    config = with_backends(
        vendor_sandbox,
        {"vmx": vendor_sandbox.backend("verimatrix")},
        {
            "name": "renewing",
            "backends": ["vmx"],
            "license": {"renewal": {"enabled": True, "delay": "1h"}},
        },
    )
    warnings = dict(build_pipeline(config).warnings)
    assert warnings["policies[1].license.renewal.delay"] == (
        "backend 'vmx' (verimatrix) for widevine does not render this: the vendor's default applies"
    )


def test_clearkey_durations_are_warned_about_never_dropped_silently():
    config = proxy_config(
        {
            "policies": [
                {"name": "default", "backends": ["clearkey"], "license": {"license_duration": "1h"}}
            ]
        }
    )
    warnings = dict(build_pipeline(config).warnings)
    assert warnings["policies[0].license.license_duration"] == (
        "backend 'clearkey' (clearkey) for clearkey does not render this: a ClearKey license "
        "carries no lifetime: the player keeps the keys for as long as it likes"
    )


def test_a_backend_whose_urls_leave_a_drm_out_is_warned_about(vendor_sandbox):
    """Regression: such a backend raised DRM_NOT_SUPPORTED, which stopped failover."""
    axinom_wv = vendor_sandbox.backend("axinom")
    axinom_wv["urls"] = {"widevine": axinom_wv["urls"]["widevine"]}
    config = with_backends(
        vendor_sandbox,
        {"ax-wv": axinom_wv, "ax": vendor_sandbox.backend("axinom")},
        {"name": "both", "backends": ["ax-wv", "ax"]},
    )
    pipeline = build_pipeline(config)
    warnings = dict(pipeline.warnings)
    assert warnings["policies[1].backends[0]"] == (
        "backend 'ax-wv' has no fairplay URL: fairplay requests of policy 'both' skip it"
    )
    assert pipeline.backends["ax-wv"].drm_systems == frozenset({DrmSystem.WIDEVINE})


# -- per request -----------------------------------------------------------------------


async def test_a_backend_without_the_drms_url_is_skipped_for_the_next(
    vendor_sandbox, proxy_factory, dev_token
):
    axinom_wv = vendor_sandbox.backend("axinom")
    axinom_wv["urls"] = {"widevine": axinom_wv["urls"]["widevine"]}
    proxy = await proxy_factory(
        with_backends(
            vendor_sandbox,
            {"ax-wv": axinom_wv, "ax": vendor_sandbox.backend("axinom")},
            {"name": "both", "backends": ["ax-wv", "ax"]},
        )
    )
    token = dev_token({"sub": "alice", "vendor": "test"})
    response, info, code = await grpc_license(
        proxy, token, "playready", PLAYREADY, content_id="movie-1"
    )
    assert code is grpc.StatusCode.OK, info
    assert response.backend == "ax"


def trusting(config: dict[str, Any]) -> dict[str, Any]:
    config["auth"]["issuers"][0]["trust_policy_claims"] = True
    return config


async def test_a_rule_from_a_claim_that_a_backend_cant_carry_goes_to_the_next_backend(
    vendor_sandbox, proxy_factory, dev_token
):
    """Regression: rules that arrive with the token were dropped where the vendor request
    had no place for them. The configured policy is left to Azure's content key policy;
    the claim's shorter license can't reach it, so Axinom (which renders it) serves."""
    ams = vendor_sandbox.backend("azure", policy_enforced_by_vendor=True)
    config = trusting(
        with_backends(
            vendor_sandbox,
            {"ams": ams, "ax": vendor_sandbox.backend("axinom")},
            {"name": "r", "backends": ["ams", "ax"], "license": {"license_duration": "1d"}},
        )
    )
    proxy = await proxy_factory(config)
    before = len(vendor_sandbox["azure"].state.received)
    plain = dev_token({"sub": "alice", "vendor": "test"})
    response, info, code = await grpc_license(proxy, plain, "playready", PLAYREADY)
    assert code is grpc.StatusCode.OK, info
    assert response.backend == "ams"
    tightened = dev_token({"sub": "alice", "vendor": "test", "policy": {"license_duration": 600}})
    response, info, code = await grpc_license(proxy, tightened, "playready", PLAYREADY)
    assert code is grpc.StatusCode.OK, info
    assert response.backend == "ax"
    assert license_facts("playready", response.license)["license"]["duration"] == 600
    assert len(vendor_sandbox["azure"].state.received) == before + 1


async def test_when_no_backend_can_carry_the_rule_the_request_is_refused(
    vendor_sandbox, proxy_factory, dev_token
):
    ams = vendor_sandbox.backend("azure", policy_enforced_by_vendor=True)
    proxy = await proxy_factory(
        trusting(
            with_backends(
                vendor_sandbox,
                {"ams": ams},
                {"name": "r", "backends": ["ams"], "license": {"license_duration": "1d"}},
            )
        )
    )
    token = dev_token({"sub": "alice", "vendor": "test", "policy": {"license_duration": 600}})
    _, info, code = await grpc_license(proxy, token, "playready", PLAYREADY)
    assert code is grpc.StatusCode.FAILED_PRECONDITION
    assert info.reason == "UPSTREAM_REJECTED"
    assert info.metadata["vendor_code"] == "POLICY_NOT_RENDERABLE"
    assert info.metadata["policy_fields"] == "license.license_duration"
    assert info.metadata["backend"] == "ams"


@pytest.mark.parametrize(
    ("window", "state"),
    [({"start": timedelta(hours=1)}, "not_started"), ({"expiry": timedelta(0)}, "closed")],
)
async def test_clearkey_keeps_the_license_window(
    window, state, proxy_factory, dev_token, fake_clock
):
    """Regression: the ClearKey backend issued keys outside license.start/expiry."""
    now = datetime.fromtimestamp(fake_clock.time(), UTC)
    config = proxy_config()
    config["policies"][0]["license"] = {k: now + v for k, v in window.items()}
    proxy = await proxy_factory(config, clock=fake_clock)
    token = dev_token({"sub": "alice"}, now=fake_clock.time())
    request = samples.clearkey_request(KID)
    response, info, code = await grpc_license(proxy, token, "clearkey", request)
    assert code is grpc.StatusCode.PERMISSION_DENIED, response
    assert info.reason == "NOT_ENTITLED"
    assert info.metadata["license_window"] == state


# -- the shared checks on their own ----------------------------------------------------


def test_the_window_opens_at_start_and_closes_at_expiry():
    start = datetime(2030, 1, 1, tzinfo=UTC)
    settings = Policy.model_validate(
        {"name": "w", "license": {"start": start, "expiry": start + timedelta(days=1)}}
    ).license
    opens = start.timestamp()
    with pytest.raises(ProxyError):
        proxy.check_window(settings, opens - 1)
    proxy.check_window(settings, opens)
    proxy.check_window(settings, opens + 86399)
    with pytest.raises(ProxyError) as caught:
        proxy.check_window(settings, opens + 86400)
    assert caught.value.reason is Reason.NOT_ENTITLED


def test_durations_are_capped_by_the_whole_seconds_left():
    expiry = datetime(2030, 1, 1, tzinfo=UTC)
    policy = {**RENTAL, "license": {**RENTAL["license"], "expiry": expiry}}
    settings = Policy.model_validate(policy).license
    capped = proxy.capped(settings, expiry.timestamp() - 100.5)
    assert (capped.license_duration, capped.rental_duration) == (100, 100)
    assert capped.playback_duration == 14400
    unlimited = settings.model_copy(update={"license_duration": 0})
    assert proxy.capped(unlimited, expiry.timestamp() - 50).license_duration == 50
    with pytest.raises(ProxyError) as caught:
        proxy.capped(settings, expiry.timestamp() - 0.5)
    assert caught.value.reason is Reason.NOT_ENTITLED


def test_certificate_requests_and_releases_pass_the_window():
    closed = {**RENTAL, "license": {**RENTAL["license"], "expiry": "2020-01-01T00:00:00Z"}}
    clock = FakeClock()
    for request_type in (RequestType.SERVICE_CERTIFICATE, RequestType.RELEASE):
        call = make_call(closed, clock, challenge=challenge(request_type=request_type))
        assert (
            proxy.prepare(call, proxy.WIDEVINE_RENDERING, "v", clock.time()) is call.policy.license
        )
    with pytest.raises(ProxyError) as caught:
        proxy.prepare(make_call(closed, clock), proxy.WIDEVINE_RENDERING, "v", clock.time())
    assert caught.value.reason is Reason.NOT_ENTITLED


@pytest.mark.parametrize(
    ("name", "value", "restricts"),
    [
        ("can_play", False, True),
        ("can_play", True, False),
        ("persistent", True, False),
        ("license_duration", 0, False),
        ("license_duration", 60, True),
    ],
)
def test_which_license_values_restrict(name, value, restricts):
    from proxy.policy import LicenseSettings

    assert proxy.restricts(LicenseSettings, name, value) is restricts
