"""``access_device``: device lists from the token, trusted callers and a header; file reloads."""

from __future__ import annotations

import asyncio
import os

import grpc
import pytest

from licenseproxy.v1 import license_proxy_pb2 as pb
from plugins.access.device import DeviceRule
from proxy import hookimpl
from proxy.builder import build_pipeline
from proxy.errors import ConfigError
from proxy.policy import EffectivePolicy, Policy, PolicyAccess
from proxy.testing import proxy_config
from tests.access_support import grpc_call, http_call

TRUSTED = {"trusted_proxies": ["127.0.0.0/8"]}


def device_config(device: dict, **extra) -> dict:
    return proxy_config({"access": {"device": device}, **extra})


async def test_allow_list_by_token_claim(proxy_factory, http, dev_token):
    proxy = await proxy_factory(device_config({"allow": ["dev-1", "dev-2"]}))
    assert (await grpc_call(proxy, dev_token({"device": "dev-1"}))).ok
    refused = await grpc_call(proxy, dev_token({"device": "dev-9"}))
    assert refused.reason == "DEVICE_NOT_ALLOWED"
    assert refused.status == grpc.StatusCode.PERMISSION_DENIED
    over_http = await http_call(proxy, http, dev_token())
    assert (over_http.reason, over_http.status) == ("DEVICE_NOT_ALLOWED", 403)
    assert "no device" in over_http.detail


async def test_deny_list_and_no_device(proxy_factory, http, dev_token):
    proxy = await proxy_factory(device_config({"deny": ["stolen"]}))
    assert (await http_call(proxy, http, dev_token({"device": "stolen"}))).reason == (
        "DEVICE_NOT_ALLOWED"
    )
    assert (await http_call(proxy, http, dev_token({"device": "mine"}))).ok
    assert (await http_call(proxy, http, dev_token())).ok  # a deny list alone needs no device


async def test_a_header_names_the_device_and_cors_allows_it(proxy_factory, http, dev_token):
    proxy = await proxy_factory(device_config({"header": "X-Device-Id", "deny": ["stolen"]}))
    answer = await http_call(proxy, http, dev_token(), headers={"X-Device-Id": "stolen"})
    assert answer.reason == "DEVICE_NOT_ALLOWED"
    metadata = (("x-device-id", "stolen"),)
    assert (await grpc_call(proxy, dev_token(), metadata=metadata)).reason == "DEVICE_NOT_ALLOWED"
    assert (await http_call(proxy, http, dev_token(), headers={"X-Device-Id": "fine"})).ok
    preflight = {"Origin": "https://player.example", "Access-Control-Request-Method": "POST"}
    async with http.options(f"{proxy.http_url}/v1/licenses/clearkey", headers=preflight) as resp:
        allowed = resp.headers["Access-Control-Allow-Headers"].lower()
    assert "x-device-id" in allowed


async def test_a_token_for_another_device_is_refused(proxy_factory, http, dev_token):
    proxy = await proxy_factory(device_config({"header": "x-device-id"}, server=TRUSTED))
    token = dev_token({"device": "dev-1"})
    assert (await http_call(proxy, http, token, headers={"X-Device-Id": "dev-1"})).ok
    answer = await http_call(proxy, http, token, headers={"X-Device-Id": "dev-2"})
    assert answer.reason == "DEVICE_NOT_ALLOWED"
    assert "other than the token" in answer.detail
    other = pb.ClientInfo(device_id="dev-2")
    assert (await grpc_call(proxy, token, client=other)).reason == "DEVICE_NOT_ALLOWED"


async def test_trusted_callers_device_id_counts_an_untrusted_ones_does_not(
    proxy_factory, dev_token
):
    client = pb.ClientInfo(device_id="stolen")
    trusted = await proxy_factory(device_config({"deny": ["stolen"]}, server=TRUSTED))
    assert (await grpc_call(trusted, dev_token(), client=client)).reason == "DEVICE_NOT_ALLOWED"
    untrusted = await proxy_factory(device_config({"deny": ["stolen"]}))
    assert (await grpc_call(untrusted, dev_token(), client=client)).ok


async def test_require_and_ignore_case(proxy_factory, http, dev_token):
    proxy = await proxy_factory(
        device_config({"require": True, "ignore_case": True, "allow": ["ED85E2BC-63D8"]})
    )
    assert (await http_call(proxy, http, dev_token())).reason == "DEVICE_NOT_ALLOWED"
    assert (await http_call(proxy, http, dev_token({"device": "ed85e2bc-63d8"}))).ok
    for bad in (True, {"id": 1}, "x" * 600):
        answer = await http_call(proxy, http, dev_token({"device": bad}))
        assert answer.reason == "DEVICE_NOT_ALLOWED"


async def test_policy_requires_a_device_id(proxy_factory, http, dev_token):
    policies = [
        {
            "name": "tv",
            "backends": ["clearkey"],
            "priority": 5,
            "match": {"content_ids": ["tv/*"]},
            "access": {"require_device_id": True},
        },
        {"name": "default", "backends": ["clearkey"]},
    ]
    proxy = await proxy_factory(proxy_config({"policies": policies}))
    refused = await http_call(proxy, http, dev_token(), content_id="tv/1")
    assert refused.reason == "DEVICE_NOT_ALLOWED"
    assert refused.metadata == {"policy": "tv"}
    assert (await http_call(proxy, http, dev_token({"device": "box"}), content_id="tv/1")).ok
    assert (await http_call(proxy, http, dev_token(), content_id="web/1")).ok


async def test_a_policys_device_requirement_holds(proxy_factory, dev_token):
    config = proxy_config()
    config["policies"][0]["access"] = {"require_device_id": True}
    proxy = await proxy_factory(config)
    refused = await grpc_call(proxy, dev_token({"sub": "a"}))
    assert (refused.reason, refused.status) == (
        "DEVICE_NOT_ALLOWED",
        grpc.StatusCode.PERMISSION_DENIED,
    )
    assert refused.metadata["policy"] == "default"
    assert (await grpc_call(proxy, dev_token({"sub": "a", "device": "box-1"}))).ok


@pytest.mark.parametrize("value", [1, "yes", "true"])
def test_a_policys_device_requirement_is_a_toml_boolean(value):
    # pydantic read 1, "yes" and "true" as true (and "no" as false, silently): a boolean
    # setting now takes a TOML boolean only, so a quoted value can't flip a rule.
    config = proxy_config()
    config["policies"][0]["access"] = {"require_device_id": value}
    with pytest.raises(ConfigError) as refused:
        build_pipeline(config)
    assert refused.value.errors == [
        (
            "policies[0].access.require_device_id",
            "must be true or false (a TOML boolean, not a string or a number)",
        )
    ]


class _InHouseElection:
    """An in-house election handing out a policy the config never lists."""

    @hookimpl(tryfirst=True)
    def proxy_select_policy(self, ctx, principal):
        policy = Policy(
            name="in-house", backends=["clearkey"], access=PolicyAccess(require_device_id=True)
        )
        return EffectivePolicy.from_policy(policy)


async def test_a_device_requirement_from_an_in_house_policy_is_enforced(
    proxy_factory, http, dev_token
):
    proxy = await proxy_factory(plugins=[_InHouseElection()])
    refused = await http_call(proxy, http, dev_token())
    assert (refused.reason, refused.status) == ("DEVICE_NOT_ALLOWED", 403)
    assert refused.metadata == {"policy": "in-house"}
    assert (await http_call(proxy, http, dev_token({"device": "box-1"}))).ok


def _write(path, text: str) -> None:
    # write then rename, as deployment tools do, so a reader never sees half a file
    tmp = path.with_suffix(".tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


async def test_a_list_file_is_reloaded_when_it_changes(tmp_path, proxy_factory, http, dev_token):
    allow = tmp_path / "devices.txt"
    _write(allow, "# fleet\ndev-1\n")
    config = device_config({"allow_file": "devices.txt", "reload_interval": 0.02})
    proxy = await proxy_factory(config, base_dir=tmp_path)
    assert (await http_call(proxy, http, dev_token({"device": "dev-1"}))).ok
    assert (await http_call(proxy, http, dev_token({"device": "dev-2"}))).reason == (
        "DEVICE_NOT_ALLOWED"
    )
    _write(allow, "dev-1\ndev-2\n")
    for _ in range(500):
        if (await http_call(proxy, http, dev_token({"device": "dev-2"}))).ok:
            break
        await asyncio.sleep(0.01)
    else:
        pytest.fail("the changed device list was never picked up")
    # a broken file keeps the last good list
    _write(allow, "dev-3\n" + "x" * 600 + "\n")
    await asyncio.sleep(0.1)
    assert (await http_call(proxy, http, dev_token({"device": "dev-2"}))).ok
    assert (await http_call(proxy, http, dev_token({"device": "dev-3"}))).reason == (
        "DEVICE_NOT_ALLOWED"
    )


async def test_no_request_is_dropped_while_the_list_changes(
    tmp_path, proxy_factory, http, dev_token
):
    allow = tmp_path / "devices.txt"
    _write(allow, "dev-1\n")
    config = device_config({"allow_file": str(allow), "reload_interval": 0.005})
    proxy = await proxy_factory(config)
    token = dev_token({"device": "dev-1"})

    async def churn() -> None:
        for i in range(40):
            _write(allow, "dev-1\n" + "".join(f"extra-{i}-{j}\n" for j in range(i * 50)))
            await asyncio.sleep(0.005)

    writer = asyncio.create_task(churn())
    answers = []
    while not writer.done():
        answers += await asyncio.gather(*(http_call(proxy, http, token) for _ in range(5)))
    await writer
    assert answers and all(a.ok for a in answers)


async def test_reload_reads_off_the_loop_and_reports_errors(tmp_path):
    allow = tmp_path / "devices.txt"
    allow.write_text("dev-1\n")
    rule = DeviceRule()
    pipeline = build_pipeline(
        device_config({"allow_file": str(allow)}), plugins=[("device-under-test", rule)]
    )
    assert pipeline is not None
    assert "dev-1" in rule.allow
    _write(allow, "dev-2\n")
    await rule.reload()
    assert "dev-2" in rule.allow and "dev-1" not in rule.allow
    allow.unlink()
    await rule.reload()  # logged and counted, never raised
    assert "dev-2" in rule.allow
    assert rule.allow.last_error is not None


def test_config_errors_name_the_key(tmp_path):
    config = device_config({"allow_file": "missing.txt", "reload_interval": 0, "allow": "dev-1"})
    with pytest.raises(ConfigError) as raised:
        build_pipeline(config, base_dir=tmp_path)
    errors = dict(raised.value.errors)
    assert "access.device.reload_interval" in errors
    assert "access.device.allow" in errors
    (tmp_path / "long.txt").write_text("ok\n" + "y" * 600 + "\n")
    with pytest.raises(ConfigError) as raised:
        build_pipeline(device_config({"deny_file": "long.txt"}), base_dir=tmp_path)
    assert "line 2" in dict(raised.value.errors)["access.device.deny_file"]
