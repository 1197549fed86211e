"""The never-looser contract holds for every adapter, whatever it implements: a vendor that
declares no rendering renders nothing, so every restricting rule is refused at start (with its
key path) and per request, unless its vendor account enforces the policy."""

from __future__ import annotations

import uuid
from typing import Any

import pytest

from proxy import (
    BackendSettings,
    DrmSystem,
    Rendering,
    VendorCall,
    VendorLicense,
    VendorSpec,
    hookimpl,
)
from proxy.builder import build_pipeline
from proxy.errors import ConfigError, ProxyError, Reason
from proxy.model import LicenseRequest
from proxy.testing import proxy_config
from tests.conftest import clearkey_request

KID = uuid.UUID("0a8b1c2d-3e4f-4a5b-8c6d-7e8f9a0b1c2d").bytes


class BareAdapter:
    """A local adapter that issues whatever it is asked, and never calls prepare()."""

    issued = 0

    def __init__(self, name: str, settings: BackendSettings, services: Any) -> None:
        self.name = name

    async def issue(self, call: VendorCall) -> VendorLicense:
        BareAdapter.issued += 1
        return VendorLicense(b'{"keys":[]}', "application/json", call.key_ids)


class BarePlugin:
    """Registers the ``bare`` vendor: no rendering declared, unless told one."""

    def __init__(self, **spec: Any) -> None:
        self.spec = spec

    @hookimpl
    def proxy_register_vendors(self, register):
        register(
            VendorSpec(
                name="bare",
                settings=BackendSettings,
                adapter=BareAdapter,
                drm_systems=frozenset({DrmSystem.WIDEVINE, DrmSystem.CLEARKEY}),
                **self.spec,
            )
        )


def bare_config(policy: dict[str, Any], **backend: Any) -> dict[str, Any]:
    config = proxy_config()
    config["backends"]["bare"] = {"vendor": "bare", **backend}
    config["policies"].append(
        {"name": "bare", "match": {"claims": {"vendor": "bare"}}, "backends": ["bare"], **policy}
    )
    return config


def start_errors(config: dict[str, Any], plugin: BarePlugin) -> dict[str, str]:
    with pytest.raises(ConfigError) as raised:
        build_pipeline(config, plugins=[("bare", plugin)])
    return dict(raised.value.errors)


def test_an_adapter_with_no_rendering_declaration_is_refused_hdcp_at_start():
    """Regression: an adapter without policy_gaps skipped the check, so a policy demanding
    HDCP 2 and a license duration started and was served without either."""
    policy = {"tracks": {"HD": {"hdcp": "V2"}}, "license": {"license_duration": "1h"}}
    errors = start_errors(bare_config(policy), BarePlugin())
    assert set(errors) >= {"policies[1].tracks.HD.hdcp", "policies[1].license.license_duration"}
    assert (
        "backend 'bare' (bare) for widevine can't render this"
        in errors["policies[1].tracks.HD.hdcp"]
    )
    assert "policy_enforced_by_vendor" in errors["policies[1].tracks.HD.hdcp"]


def test_a_declared_rendering_is_honoured_and_rules_that_loosen_nothing_pass():
    rendering = {DrmSystem.WIDEVINE: Rendering(tracks=frozenset({"hdcp"}))}
    plugin = BarePlugin(renderings=rendering)
    assert build_pipeline(
        bare_config({"tracks": {"HD": {"hdcp": "V2"}}, "match": {"drm_systems": ["widevine"]}}),
        plugins=[("bare", plugin)],
    ).backends["bare"]
    assert build_pipeline(
        bare_config({"license": {"persistent": True}}), plugins=[("bare", BarePlugin())]
    ).warnings


def test_a_local_backend_cannot_hand_the_policy_to_a_vendor_account():
    errors = start_errors(
        bare_config({"tracks": {"HD": {"hdcp": "V2"}}}, policy_enforced_by_vendor=True),
        BarePlugin(),
    )
    assert "there is no vendor account" in errors["backends.bare.policy_enforced_by_vendor"]


class ChoosesBare:
    """Sends every request to the ``bare`` backend, which the start-up check never judged
    against the elected policy."""

    @hookimpl(tryfirst=True)
    def proxy_select_backends(self, ctx, principal, policy):
        return ["bare"]


async def test_a_rule_it_cant_render_is_refused_per_request_though_the_adapter_skips_prepare(
    dev_token,
):
    """Regression: the per-request check ran only inside adapters that called prepare()."""
    config = bare_config({"license": {"can_play": True}})
    pipeline = build_pipeline(config, plugins=[("bare", BarePlugin()), ("chooser", ChoosesBare())])
    before = BareAdapter.issued
    request = LicenseRequest(challenge=clearkey_request(KID), token=dev_token({"sub": "alice"}))
    with pytest.raises(ProxyError) as raised:
        await pipeline.acquire(request)
    assert raised.value.reason is Reason.UPSTREAM_REJECTED
    assert raised.value.metadata["vendor_code"] == "POLICY_NOT_RENDERABLE"
    # the default policy's persistent = false: a restriction the bare backend can't carry
    assert raised.value.metadata["policy_fields"] == "license.persistent"
    assert BareAdapter.issued == before
    rendering = {DrmSystem.CLEARKEY: Rendering(license=frozenset({"persistent"}))}
    plugins = [("bare", BarePlugin(renderings=rendering)), ("chooser", ChoosesBare())]
    result = await build_pipeline(config, plugins=plugins).acquire(request)
    assert result.backend == "bare"
    assert BareAdapter.issued == before + 1
