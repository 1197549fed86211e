"""One test per hook (``test_hook_<name>``), plus the host's rules: order, fail closed, blocking."""

from __future__ import annotations

import json
import uuid

import pytest

from proxy import (
    ChallengeInfo,
    DrmSystem,
    EffectivePolicy,
    Principal,
    ProxyError,
    Reason,
    RequestType,
    VendorLicense,
    VendorSpec,
    hookimpl,
)
from proxy.builder import build_pipeline
from proxy.encoding import b64url_encode
from proxy.errors import ConfigError
from proxy.model import LicenseRequest
from proxy.testing import proxy_config
from proxy.vendors import BackendSettings
from tests.conftest import clearkey_request

KID = uuid.UUID("4060a865-8878-4267-9cbf-91ae5bae1e72").bytes


def license_request(token: str, **kwargs) -> LicenseRequest:
    return LicenseRequest(
        challenge=kwargs.pop("challenge", clearkey_request(KID)),
        token=token,
        request_id="test",
        **kwargs,
    )


class Recorder:
    """Sees every per-request hook; returns None so the built-ins decide."""

    def __init__(self) -> None:
        self.calls: list[str] = []

    @hookimpl
    async def proxy_inspect_challenge(self, ctx):
        self.calls.append("proxy_inspect_challenge")

    @hookimpl
    def proxy_authenticate(self, ctx):
        self.calls.append("proxy_authenticate")

    @hookimpl
    async def proxy_authorize(self, ctx, principal):
        self.calls.append("proxy_authorize")

    @hookimpl
    def proxy_select_policy(self, ctx, principal):
        self.calls.append("proxy_select_policy")

    @hookimpl
    def proxy_authorize_policy(self, ctx, principal, policy):
        self.calls.append("proxy_authorize_policy")

    @hookimpl
    async def proxy_select_backends(self, ctx, principal, policy):
        self.calls.append("proxy_select_backends")

    @hookimpl
    def proxy_license_issued(self, ctx, result):
        self.calls.append("proxy_license_issued")

    @hookimpl
    def proxy_license_denied(self, ctx, error):
        self.calls.append("proxy_license_denied")


async def test_a_plugin_sees_every_hook_in_pipeline_order(dev_token):
    recorder = Recorder()
    pipeline = build_pipeline(proxy_config(), plugins=[recorder])
    result = await pipeline.acquire(license_request(dev_token()))
    assert result.backend == "clearkey"
    assert recorder.calls == [
        "proxy_inspect_challenge",
        "proxy_authenticate",
        "proxy_authorize",
        "proxy_select_policy",
        "proxy_authorize_policy",
        "proxy_select_backends",
        "proxy_license_issued",
    ]


class Explodes:
    def __init__(self, hook: str) -> None:
        self.hook = hook

    @hookimpl(tryfirst=True)
    def proxy_authorize(self, ctx, principal):
        if self.hook == "proxy_authorize":
            raise RuntimeError("boom: secret-ish detail")

    @hookimpl(tryfirst=True)
    async def proxy_select_policy(self, ctx, principal):
        if self.hook == "proxy_select_policy":
            raise KeyError("boom")


@pytest.mark.parametrize("hook", ["proxy_authorize", "proxy_select_policy"])
async def test_a_plugin_that_raises_denies_with_internal(hook, dev_token, caplog):
    pipeline = build_pipeline(proxy_config(), plugins=[("exploder", Explodes(hook))])
    with pytest.raises(ProxyError) as raised:
        await pipeline.acquire(license_request(dev_token()))
    assert raised.value.reason is Reason.INTERNAL
    assert "boom" not in raised.value.detail
    assert any("exploder" in r.getMessage() and hook in r.getMessage() for r in caplog.records)


async def test_a_blocked_plugin_never_runs(dev_token):
    recorder = Recorder()
    config = proxy_config({"plugins": {"blocked": ["recorder"]}})
    pipeline = build_pipeline(config, plugins=[("recorder", recorder)])
    await pipeline.acquire(license_request(dev_token()))
    assert recorder.calls == []
    assert "recorder" not in pipeline.host.plugin_names()


async def test_blocking_a_builtin_removes_its_decision(dev_token):
    # Without the token plugin nothing authenticates: fail closed.
    config = proxy_config({"plugins": {"blocked": ["token"]}, "auth": None})
    pipeline = build_pipeline(config)
    with pytest.raises(ProxyError) as raised:
        await pipeline.acquire(license_request(dev_token()))
    assert raised.value.reason is Reason.TOKEN_MISSING


class AsyncNone:
    @hookimpl(tryfirst=True)
    async def proxy_select_policy(self, ctx, principal):
        return None


async def test_an_async_first_rule_hook_returning_none_falls_through(dev_token):
    pipeline = build_pipeline(proxy_config(), plugins=[AsyncNone()])
    result = await pipeline.acquire(license_request(dev_token()))
    assert result.policy == "default"


# -- one test per hook -------------------------------------------------------------


class ReadsItsSection:
    def __init__(self) -> None:
        self.value = None

    @hookimpl
    def proxy_configure(self, config):
        from pydantic import BaseModel, ConfigDict

        class Section(BaseModel):
            model_config = ConfigDict(extra="forbid")
            limit: int

        settings = config.section("acme", Section)
        self.value = settings.limit if settings else None


def test_hook_proxy_configure():
    plugin = ReadsItsSection()
    build_pipeline(proxy_config({"acme": {"limit": 3}}), plugins=[plugin])
    assert plugin.value == 3
    with pytest.raises(ConfigError) as raised:
        build_pipeline(
            proxy_config({"acme": {"limit": "x", "typo": 1}}), plugins=[ReadsItsSection()]
        )
    paths = [path for path, _ in raised.value.errors]
    assert "acme.limit" in paths and "acme.typo" in paths


class EchoSettings(BackendSettings):
    prefix: str = "echo:"


class EchoAdapter:
    def __init__(self, name, settings, services):
        self.prefix = settings.prefix.encode()

    async def issue(self, call):
        return VendorLicense(self.prefix + call.challenge.payload, "text/plain")


class EchoVendor:
    @hookimpl
    def proxy_register_vendors(self, register):
        register(VendorSpec("echo", EchoSettings, EchoAdapter, frozenset({DrmSystem.CLEARKEY})))


async def test_hook_proxy_register_vendors(dev_token):
    config = proxy_config(
        {
            "backends": {"echo": {"vendor": "echo", "prefix": "E:"}},
            "policies": [{"name": "default", "backends": ["echo"]}],
        }
    )
    pipeline = build_pipeline(config, plugins=[EchoVendor()])
    result = await pipeline.acquire(license_request(dev_token()))
    assert result.vendor == "echo"
    assert result.license == b"E:" + clearkey_request(KID)
    assert result.content_type == "text/plain"
    with pytest.raises(ConfigError) as raised:
        build_pipeline(
            proxy_config({"backends": {"echo": {"vendor": "echo", "prefix": 1}}}),
            plugins=[EchoVendor()],
        )
    assert [p for p, _ in raised.value.errors] == ["backends.echo.prefix"]


class ReadsRot13:
    @hookimpl(tryfirst=True)
    def proxy_inspect_challenge(self, ctx):
        if not ctx.request.challenge.startswith(b"rot13:"):
            return None
        return ChallengeInfo(DrmSystem.CLEARKEY, RequestType.NEW, ctx.request.challenge, (KID,))


async def test_hook_proxy_inspect_challenge(dev_token):
    pipeline = build_pipeline(proxy_config(), plugins=[ReadsRot13()])
    ctx = pipeline.new_context(license_request(dev_token(), challenge=b"rot13:zbivr"))
    info = await pipeline.inspect(ctx)
    assert info.key_ids == (KID,)
    ctx = pipeline.new_context(license_request(dev_token(), challenge=clearkey_request(KID)))
    assert (await pipeline.inspect(ctx)).payload == clearkey_request(KID)
    ctx = pipeline.new_context(license_request(dev_token(), challenge=b"\x00\x01garbage"))
    with pytest.raises(ProxyError) as raised:
        await pipeline.inspect(ctx)
    assert raised.value.reason is Reason.CHALLENGE_INVALID


class ApiKeys:
    @hookimpl(tryfirst=True)
    async def proxy_authenticate(self, ctx):
        key = ctx.request.headers.get("x-api-key")
        if key is None:
            return None
        if key != "good":
            raise ProxyError(Reason.TOKEN_SIGNATURE_INVALID, "unknown API key")
        return Principal(subject="service-a", issuer="api-keys", claims={})


async def test_hook_proxy_authenticate(dev_token):
    pipeline = build_pipeline(proxy_config(), plugins=[ApiKeys()])
    result = await pipeline.acquire(
        LicenseRequest(challenge=clearkey_request(KID), headers={"x-api-key": "good"})
    )
    assert result.policy == "default"
    with pytest.raises(ProxyError) as raised:
        await pipeline.acquire(
            LicenseRequest(challenge=clearkey_request(KID), headers={"x-api-key": "bad"})
        )
    assert raised.value.reason is Reason.TOKEN_SIGNATURE_INVALID
    # no API key: the token plugin decides
    assert (await pipeline.acquire(license_request(dev_token()))).backend == "clearkey"


class PremiumOnly:
    def __init__(self) -> None:
        self.later_ran = False

    @hookimpl(tryfirst=True)
    def proxy_authorize(self, ctx, principal):
        if "premium" not in principal.claims.get("groups", ()):
            raise ProxyError(Reason.NOT_ENTITLED, "premium content")


class SpendsState:
    def __init__(self) -> None:
        self.spent = 0

    @hookimpl(trylast=True)
    def proxy_authorize(self, ctx, principal):
        self.spent += 1


async def test_hook_proxy_authorize(dev_token):
    spender = SpendsState()
    pipeline = build_pipeline(proxy_config(), plugins=[PremiumOnly(), spender])
    await pipeline.acquire(license_request(dev_token({"groups": ["premium"]})))
    assert spender.spent == 1
    with pytest.raises(ProxyError) as raised:
        await pipeline.acquire(license_request(dev_token({"groups": ["basic"]})))
    assert raised.value.reason is Reason.NOT_ENTITLED
    assert spender.spent == 1  # a denied request spends no state in later rules


class TrialPolicy:
    @hookimpl(tryfirst=True)
    def proxy_select_policy(self, ctx, principal):
        from proxy.policy import Policy

        if principal.claims.get("tier") == "trial":
            ctx.note("tier claim is trial")
            return EffectivePolicy.from_policy(Policy(name="trial", backends=["clearkey"]))
        return None


async def test_hook_proxy_select_policy(dev_token):
    pipeline = build_pipeline(proxy_config(), plugins=[TrialPolicy()])
    assert (await pipeline.acquire(license_request(dev_token({"tier": "trial"})))).policy == "trial"
    assert (await pipeline.acquire(license_request(dev_token()))).policy == "default"
    dry = await pipeline.acquire(license_request(dev_token({"tier": "trial"}), dry_run=True))
    assert dry.dry_run and dry.license == b""
    step = next(s for s in dry.trace if s.hook == "proxy_select_policy")
    assert step.verdict == "policy:trial" and step.reasons == ["tier claim is trial"]


async def test_no_policy_elected_is_no_matching_policy(dev_token):
    config = proxy_config(
        {
            "policies": [
                {"name": "default", "backends": ["clearkey"], "match": {"claims": {"tier": "gold"}}}
            ]
        }
    )
    pipeline = build_pipeline(config)
    with pytest.raises(ProxyError) as raised:
        await pipeline.acquire(license_request(dev_token()))
    assert raised.value.reason is Reason.NO_MATCHING_POLICY


class StudioRule:
    def __init__(self) -> None:
        self.seen: list[str] = []

    @hookimpl
    async def proxy_authorize_policy(self, ctx, principal, policy):
        self.seen.append(policy.name)
        assert ctx.policy is policy
        if policy.name == "studio-4k" and not principal.claims.get("hdcp_verified"):
            raise ProxyError(Reason.DEVICE_NOT_ALLOWED, "4K needs a verified device")


async def test_hook_proxy_authorize_policy(dev_token):
    rule = StudioRule()
    config = proxy_config(
        {
            "policies": [
                {
                    "name": "studio-4k",
                    "backends": ["clearkey"],
                    "match": {"claims": {"tier": "4k"}},
                },
                {"name": "default", "backends": ["clearkey"]},
            ]
        }
    )
    pipeline = build_pipeline(config, plugins=[rule])
    assert (await pipeline.acquire(license_request(dev_token()))).policy == "default"
    with pytest.raises(ProxyError) as raised:
        await pipeline.acquire(license_request(dev_token({"tier": "4k"})))
    assert raised.value.reason is Reason.DEVICE_NOT_ALLOWED
    ok = await pipeline.acquire(license_request(dev_token({"tier": "4k", "hdcp_verified": True})))
    assert ok.policy == "studio-4k"
    assert rule.seen == ["default", "studio-4k", "studio-4k"]


class SecondBackend:
    @hookimpl(tryfirst=True)
    def proxy_select_backends(self, ctx, principal, policy):
        return ["spare"] if principal.subject == "eu-user" else None


async def test_hook_proxy_select_backends(dev_token):
    spare = {"vendor": "clearkey", "keys": {str(uuid.UUID(bytes=KID)): "hex:" + "11" * 16}}
    config = proxy_config({"backends": {"spare": spare}})
    pipeline = build_pipeline(config, plugins=[SecondBackend()])
    result = await pipeline.acquire(license_request(dev_token({"sub": "eu-user"})))
    assert result.backend == "spare"
    assert json.loads(result.license)["keys"][0]["k"] == b64url_encode(b"\x11" * 16)
    assert (await pipeline.acquire(license_request(dev_token()))).backend == "clearkey"


class Audit:
    def __init__(self) -> None:
        self.issued: list[str] = []
        self.denied: list[str] = []

    @hookimpl
    async def proxy_license_issued(self, ctx, result):
        self.issued.append(result.policy)
        raise RuntimeError("the audit store is down")

    @hookimpl
    def proxy_license_denied(self, ctx, error):
        self.denied.append(error.reason.value)
        raise RuntimeError("the audit store is down")


async def test_hook_proxy_license_issued(dev_token):
    audit = Audit()
    pipeline = build_pipeline(proxy_config(), plugins=[audit])
    result = await pipeline.acquire(license_request(dev_token()))
    assert result.license  # an observer's failure never changes the answer
    assert audit.issued == ["default"]


async def test_hook_proxy_license_denied(dev_token):
    audit = Audit()
    pipeline = build_pipeline(proxy_config(), plugins=[audit])
    with pytest.raises(ProxyError) as raised:
        await pipeline.acquire(license_request("not-a-token"))
    assert raised.value.reason is Reason.TOKEN_MALFORMED
    assert audit.denied == ["TOKEN_MALFORMED"]


def test_a_wrapper_on_a_per_request_hook_is_refused():
    class Wraps:
        @hookimpl(wrapper=True)
        def proxy_authorize(self, ctx, principal):
            return (yield)

    with pytest.raises(ConfigError):
        build_pipeline(proxy_config(), plugins=[Wraps()])


def test_a_misspelled_hook_is_refused():
    class Typo:
        @hookimpl
        def proxy_authorise(self, ctx, principal):
            return None

    with pytest.raises(ConfigError) as raised:
        build_pipeline(proxy_config(), plugins=[("typo", Typo())])
    assert raised.value.errors[0][0] == "plugins.typo"


# -- order and loading -----------------------------------------------------------------

ALL_ACCESS_RULES = {
    "access": {
        "ip": {"allow": ["0.0.0.0/0", "::/0"]},
        "device": {"deny": ["stolen-device"]},
        "entitlement": {"rules": [{"name": "all", "claim": "groups", "any_of": ["viewer"]}]},
        "replay": {},
        "concurrency": {"limit": 5},
        "rate_limit": {"subject": {"requests": 100, "per": "1s"}},
    }
}


class InHouseRules:
    """An in-house plugin placing one rule in each tier."""

    @hookimpl(tryfirst=True)
    def proxy_authorize(self, ctx, principal):
        return None


class InHouseMiddle:
    @hookimpl
    def proxy_authorize(self, ctx, principal):
        return None


class InHouseLate:
    @hookimpl(trylast=True)
    def proxy_authorize(self, ctx, principal):
        return None


def test_the_built_in_access_rules_run_in_the_stated_order():
    config = proxy_config(ALL_ACCESS_RULES)
    plugins = [("early", InHouseRules()), ("middle", InHouseMiddle()), ("late", InHouseLate())]
    pipeline = build_pipeline(config, plugins=plugins)
    assert pipeline.host.implementations("proxy_authorize") == [
        "early",
        "access_ip",
        "access_device",
        "access_entitlement",
        "middle",
        "late",
        "access_replay",
        "access_rate_limit",
        "access_concurrency",
        "access_state",
    ]


async def test_the_cheapest_refusal_wins_when_two_rules_would_deny(dev_token):
    config = proxy_config(
        {
            "access": {
                "ip": {"deny": ["127.0.0.0/8", "::1/128"]},
                "entitlement": {
                    "rules": [{"name": "all", "claim": "groups", "any_of": ["viewer"]}]
                },
            }
        }
    )
    pipeline = build_pipeline(config)
    request = license_request(dev_token({"groups": ["nobody"]}))
    request.client.ip_address = "127.0.0.1"
    with pytest.raises(ProxyError) as raised:
        await pipeline.acquire(request)
    assert raised.value.reason is Reason.IP_NOT_ALLOWED


def test_an_installed_plugin_passed_explicitly_replaces_its_entry_point_copy():
    from plugins.token import TokenPlugin

    mine = TokenPlugin()
    pipeline = build_pipeline(proxy_config(), plugins=[mine])
    names = pipeline.host.plugin_names()
    assert names.count("token") == 1 and "TokenPlugin" not in names
    assert pipeline.host._loader.pm.get_plugin("token") is mine
    # in production's place: among the entry points, not after them
    assert names.index("token") < names.index("vendor_clearkey")
