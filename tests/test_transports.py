"""Both transports on real loopback servers: same request, same decision, same error model."""

from __future__ import annotations

import json
import logging
import uuid
from dataclasses import dataclass
from typing import Any

import grpc
import pytest
from google.rpc import error_details_pb2, status_pb2
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

from licenseproxy.v1 import license_proxy_pb2 as pb
from plugins.vendors.clearkey import derive_key
from proxy import ProxyError, Reason, hookimpl
from proxy.encoding import b64url_decode, b64url_encode
from proxy.problem_types import DEFAULT_TYPES
from proxy.secrets import resolve_secret
from proxy.testing import proxy_config
from proxy.tokens import development_key, mint
from tests.conftest import clearkey_request

KID = uuid.UUID("4060a865-8878-4267-9cbf-91ae5bae1e72").bytes
DEV_SEED = resolve_secret(proxy_config()["backends"]["clearkey"]["key_seed"]).value


@dataclass
class Outcome:
    """What a client saw: status, reason code, body."""

    ok: bool
    reason: str | None
    status: Any
    body: Any
    request_id: str


def grpc_error(exc: grpc.aio.AioRpcError) -> tuple[status_pb2.Status, error_details_pb2.ErrorInfo]:
    """The google.rpc.Status and its ErrorInfo from a failed call's trailers."""
    raw = dict(exc.trailing_metadata() or ())["grpc-status-details-bin"]
    status = status_pb2.Status.FromString(raw)
    info = error_details_pb2.ErrorInfo()
    assert status.details[0].Unpack(info)
    return status, info


async def via_grpc(proxy: Any, challenge: bytes, token: str | None, **fields: Any) -> Outcome:
    request = pb.AcquireLicenseRequest(
        drm_system=fields.pop("drm_system", pb.DRM_SYSTEM_CLEARKEY),
        challenge=challenge,
        token=token or "",
        **fields,
    )
    try:
        response = await proxy.stub().AcquireLicense(request)
    except grpc.aio.AioRpcError as exc:
        status, info = grpc_error(exc)
        assert status.code == exc.code().value[0]
        assert info.domain == "licenseproxy"
        return Outcome(False, info.reason, exc.code(), status.message, info.metadata["request_id"])
    return Outcome(True, None, grpc.StatusCode.OK, response.license, response.request_id)


async def via_http(
    proxy: Any, http: Any, challenge: bytes, token: str | None, drm: str = "clearkey", **query: str
) -> Outcome:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    async with http.post(
        f"{proxy.http_url}/v1/licenses/{drm}", data=challenge, headers=headers, params=query
    ) as response:
        body = await response.read()
        request_id = response.headers["X-Request-Id"]
        if response.status == 200:
            return Outcome(True, None, 200, body, request_id)
        assert response.content_type == "application/problem+json"
        problem = json.loads(body)
        assert problem["request_id"] == request_id
        assert problem["status"] == response.status
        assert problem["type"] == DEFAULT_TYPES.get(Reason(problem["reason"]), "about:blank")
        return Outcome(False, problem["reason"], response.status, problem, request_id)


async def test_grpc_and_http_issue_the_same_clearkey_license(proxy_factory, http, dev_token):
    proxy = await proxy_factory()
    token = dev_token()
    challenge = clearkey_request(KID)
    over_grpc = await via_grpc(proxy, challenge, token)
    over_http = await via_http(proxy, http, challenge, token)
    assert over_grpc.ok and over_http.ok
    assert over_grpc.body == over_http.body
    license_doc = json.loads(over_http.body)
    [key] = license_doc["keys"]
    assert key["kty"] == "oct"
    assert "=" not in key["k"] and "=" not in key["kid"]
    assert b64url_decode(key["kid"]) == KID
    assert b64url_decode(key["k"]) == derive_key(DEV_SEED, KID)
    assert license_doc["type"] == "temporary"


async def test_grpc_reads_the_token_from_authorization_metadata(proxy_factory, dev_token):
    proxy = await proxy_factory()
    request = pb.AcquireLicenseRequest(
        drm_system=pb.DRM_SYSTEM_CLEARKEY, challenge=clearkey_request(KID)
    )
    response = await proxy.stub().AcquireLicense(
        request, metadata=(("authorization", f"Bearer {dev_token()}"),)
    )
    assert response.backend == "clearkey"
    assert response.vendor == "clearkey"
    assert response.policy == "default"
    assert list(response.key_ids) == [KID]
    assert response.request_type == pb.REQUEST_TYPE_NEW
    assert response.content_type == "application/json"


async def test_http_answers_with_the_players_content_type(proxy_factory, http, dev_token):
    proxy = await proxy_factory()
    async with http.post(
        f"{proxy.http_url}/v1/licenses/clearkey",
        data=clearkey_request(KID),
        headers={"Authorization": f"Bearer {dev_token()}"},
    ) as response:
        assert response.status == 200
        assert response.content_type == "application/json"


class _SelectsUnknownBackend:
    @hookimpl(tryfirst=True)
    def proxy_select_backends(self, ctx, principal, policy):
        return ["nowhere"]


def _bad_key_token() -> str:
    kid, _ = development_key()
    return mint(
        {"iss": "license-proxy-dev", "aud": "license-proxy", "exp": 4_000_000_000},
        b"x" * 32,
        kid=kid,
    )


ERROR_CASES = {
    "token missing": (lambda t: None, clearkey_request(KID), {}, Reason.TOKEN_MISSING),
    "token malformed": (lambda t: "not-a-jwt", clearkey_request(KID), {}, Reason.TOKEN_MALFORMED),
    "signature invalid": (
        lambda t: _bad_key_token(),
        clearkey_request(KID),
        {},
        Reason.TOKEN_SIGNATURE_INVALID,
    ),
    "challenge invalid": (lambda t: t, b'{"kids": "nope"}', {}, Reason.CHALLENGE_INVALID),
    "challenge too large": (
        lambda t: t,
        b"{" + b" " * 20_000 + b"}",
        {},
        Reason.CHALLENGE_TOO_LARGE,
    ),
    "key id hint contradicts the challenge": (
        lambda t: t,
        clearkey_request(KID),
        {"key_ids": [b"\x01" * 16]},
        Reason.REQUEST_INVALID,
    ),
}


@pytest.mark.parametrize("case", ERROR_CASES)
async def test_each_reason_maps_to_its_status_on_both_transports(
    case, proxy_factory, http, dev_token
):
    make_token, challenge, extra, reason = ERROR_CASES[case]
    proxy = await proxy_factory()
    token = make_token(dev_token())
    over_grpc = await via_grpc(proxy, challenge, token, **extra)
    query = {"key_id": str(uuid.UUID(bytes=extra["key_ids"][0]))} if "key_ids" in extra else {}
    over_http = await via_http(proxy, http, challenge, token, **query)
    assert over_grpc.reason == over_http.reason == reason.value
    assert over_grpc.status == reason.grpc_code
    assert over_http.status == reason.http_status
    assert over_grpc.request_id and over_http.request_id


async def test_unknown_drm_route_is_drm_not_supported(proxy_factory, http, dev_token):
    proxy = await proxy_factory()
    outcome = await via_http(proxy, http, b"x", dev_token(), drm="betamax")
    assert outcome.reason == "DRM_NOT_SUPPORTED"
    assert outcome.status == 400


async def test_a_drm_no_backend_serves_is_drm_not_supported(proxy_factory, http, dev_token):
    proxy = await proxy_factory()
    # The two bytes of a Widevine service-certificate request; the embedded
    # default's only backend is ClearKey.
    over_grpc = await via_grpc(proxy, b"\x08\x04", dev_token(), drm_system=pb.DRM_SYSTEM_WIDEVINE)
    over_http = await via_http(proxy, http, b"\x08\x04", dev_token(), drm="widevine")
    assert over_grpc.reason == over_http.reason == "DRM_NOT_SUPPORTED"
    assert over_grpc.status == grpc.StatusCode.INVALID_ARGUMENT


async def test_backend_not_configured(proxy_factory, http, dev_token):
    proxy = await proxy_factory(plugins=[_SelectsUnknownBackend()])
    over_grpc = await via_grpc(proxy, clearkey_request(KID), dev_token())
    over_http = await via_http(proxy, http, clearkey_request(KID), dev_token())
    assert over_grpc.reason == over_http.reason == "BACKEND_NOT_CONFIGURED"
    assert over_grpc.status == grpc.StatusCode.INTERNAL
    assert over_http.status == 500


async def test_no_error_body_holds_the_token_or_a_key(proxy_factory, http, dev_token):
    proxy = await proxy_factory()
    expired = dev_token(ttl=-3600)
    outcome = await via_http(proxy, http, clearkey_request(KID), expired)
    assert outcome.reason == "TOKEN_EXPIRED"
    text = json.dumps(outcome.body)
    _, dev_key = development_key()
    for secret in (expired, expired.split(".")[1], dev_key.hex(), b64url_encode(dev_key)):
        assert secret not in text
    over_grpc = await via_grpc(proxy, clearkey_request(KID), expired)
    assert expired not in over_grpc.body


async def test_problem_json_for_aiohttp_404_405_and_oversize_bodies(proxy_factory, http):
    proxy = await proxy_factory()
    async with http.get(f"{proxy.http_url}/v1/nothing-here") as response:
        assert response.status == 404
        assert (await response.json(content_type=None))["reason"] == "REQUEST_INVALID"
    async with http.get(f"{proxy.http_url}/v1/licenses/clearkey") as response:
        assert response.status == 405
        assert response.content_type == "application/problem+json"
    huge = b"x" * (2 * 1024 * 1024)
    async with http.post(f"{proxy.http_url}/v1/license:acquire", data=huge) as response:
        assert response.status == 413
        body = await response.json(content_type=None)
        assert body["reason"] == "CHALLENGE_TOO_LARGE"
        assert "xxxx" not in json.dumps(body)


async def test_json_routes_use_the_proto3_json_mapping(proxy_factory, http, dev_token):
    proxy = await proxy_factory()
    body = {
        "drmSystem": "DRM_SYSTEM_CLEARKEY",
        "challenge": b64url_encode(clearkey_request(KID)),
        "token": dev_token(),
    }
    async with http.post(f"{proxy.http_url}/v1/license:acquire", json=body) as response:
        assert response.status == 200
        answer = await response.json()
    assert answer["backend"] == "clearkey"
    assert answer["requestType"] == "REQUEST_TYPE_NEW"
    assert json.loads(
        b64url_decode(answer["license"].replace("+", "-").replace("/", "_").rstrip("="))
    )["keys"]
    # the original field names are accepted too
    snake = {
        "drm_system": "DRM_SYSTEM_CLEARKEY",
        "challenge": body["challenge"],
        "token": body["token"],
    }
    async with http.post(f"{proxy.http_url}/v1/license:acquire", json=snake) as response:
        assert response.status == 200


async def test_json_routes_refuse_unknown_fields(proxy_factory, http):
    proxy = await proxy_factory()
    async with http.post(
        f"{proxy.http_url}/v1/license:acquire", json={"challenge": "", "surprise": 1}
    ) as response:
        assert response.status == 400
        assert (await response.json(content_type=None))["reason"] == "REQUEST_INVALID"


async def test_inspect_json_route(proxy_factory, http):
    proxy = await proxy_factory()
    body = {"challenge": b64url_encode(clearkey_request(KID, session_type="persistent-license"))}
    async with http.post(f"{proxy.http_url}/v1/challenge:inspect", json=body) as response:
        assert response.status == 200
        answer = await response.json()
    assert answer["drmSystem"] == "DRM_SYSTEM_CLEARKEY"
    assert answer["keyIdUuids"] == ["4060a865-8878-4267-9cbf-91ae5bae1e72"]
    assert answer["client"]["session_type"] == "persistent-license"


async def test_inspect_challenge_rpc_needs_no_token(proxy_factory):
    proxy = await proxy_factory()
    response = await proxy.stub().InspectChallenge(
        pb.InspectChallengeRequest(challenge=clearkey_request(KID))
    )
    assert response.drm_system == pb.DRM_SYSTEM_CLEARKEY
    assert list(response.key_ids) == [KID]
    assert response.request_type == pb.REQUEST_TYPE_NEW


async def test_cors_preflight_lists_authorization_explicitly(proxy_factory, http):
    proxy = await proxy_factory()
    headers = {
        "Origin": "https://player.example",
        "Access-Control-Request-Method": "POST",
        "Access-Control-Request-Headers": "authorization, content-type",
    }
    async with http.options(f"{proxy.http_url}/v1/licenses/clearkey", headers=headers) as response:
        assert response.status == 204
        assert response.headers["Access-Control-Allow-Origin"] == "*"
        allowed = [
            h.strip().lower() for h in response.headers["Access-Control-Allow-Headers"].split(",")
        ]
        assert "authorization" in allowed
        assert "*" not in allowed


async def test_cors_restricted_to_listed_origins(proxy_factory, http):
    config = proxy_config({"server": {"cors": {"allow_origins": ["https://good.example"]}}})
    proxy = await proxy_factory(config)
    url = f"{proxy.http_url}/v1/licenses/clearkey"
    async with http.options(url, headers={"Origin": "https://evil.example"}) as response:
        assert "Access-Control-Allow-Origin" not in response.headers
    async with http.options(url, headers={"Origin": "https://good.example"}) as response:
        assert response.headers["Access-Control-Allow-Origin"] == "https://good.example"
        assert response.headers["Vary"] == "Origin"


async def test_health_readiness_and_metrics(proxy_factory, http, dev_token):
    proxy = await proxy_factory()
    async with http.get(f"{proxy.http_url}/healthz") as response:
        assert response.status == 200
    async with http.get(f"{proxy.http_url}/readyz") as response:
        assert response.status == 200
    await via_http(proxy, http, clearkey_request(KID), dev_token())
    async with http.get(f"{proxy.admin_url}/metrics") as response:
        text = await response.text()
    assert (
        'license_proxy_requests_total{drm="clearkey",outcome="issued",reason="",transport="http"}'
        in text
    )
    stub = health_pb2_grpc.HealthStub(proxy.channel())
    answer = await stub.Check(
        health_pb2.HealthCheckRequest(service="licenseproxy.v1.LicenseProxyService")
    )
    assert answer.status == health_pb2.HealthCheckResponse.SERVING


async def test_reflection_lists_the_services(proxy_factory):
    proxy = await proxy_factory()
    stub = reflection_pb2_grpc.ServerReflectionStub(proxy.channel())

    async def requests():
        yield reflection_pb2.ServerReflectionRequest(list_services="")

    names = []
    async for answer in stub.ServerReflectionInfo(requests()):
        names = [s.name for s in answer.list_services_response.service]
    assert "licenseproxy.v1.LicenseProxyService" in names
    assert "grpc.health.v1.Health" in names


async def test_request_id_believed_only_from_trusted_callers(proxy_factory, http, dev_token):
    untrusted = await proxy_factory()
    headers = {"Authorization": f"Bearer {dev_token()}", "X-Request-Id": "caller-chosen-id"}
    async with http.post(
        f"{untrusted.http_url}/v1/licenses/clearkey", data=clearkey_request(KID), headers=headers
    ) as response:
        assert response.headers["X-Request-Id"] != "caller-chosen-id"
    trusted = await proxy_factory(proxy_config({"server": {"trusted_proxies": ["127.0.0.0/8"]}}))
    async with http.post(
        f"{trusted.http_url}/v1/licenses/clearkey", data=clearkey_request(KID), headers=headers
    ) as response:
        assert response.headers["X-Request-Id"] == "caller-chosen-id"
    response = await trusted.stub().AcquireLicense(
        pb.AcquireLicenseRequest(challenge=clearkey_request(KID), token=dev_token()),
        metadata=(("x-request-id", "grpc-caller-id"),),
    )
    assert response.request_id == "grpc-caller-id"


async def test_an_oversize_token_is_malformed_not_a_transport_error(proxy_factory, http):
    proxy = await proxy_factory()
    token = "a" * 9000  # over the 8 KiB default, under the raised transport limits
    over_grpc = await via_grpc(proxy, clearkey_request(KID), token)
    over_http = await via_http(proxy, http, clearkey_request(KID), token)
    assert over_grpc.reason == over_http.reason == "TOKEN_MALFORMED"
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await proxy.stub().AcquireLicense(
            pb.AcquireLicenseRequest(challenge=clearkey_request(KID)),
            metadata=(("authorization", "Bearer " + token),),
        )
    assert grpc_error(raised.value)[1].reason == "TOKEN_MALFORMED"


async def test_inspect_needs_a_token_only_when_configured(proxy_factory, http, dev_token):
    proxy = await proxy_factory(proxy_config({"server": {"inspect_requires_token": True}}))
    request = pb.InspectChallengeRequest(challenge=clearkey_request(KID))
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await proxy.stub().InspectChallenge(request)
    assert grpc_error(raised.value)[1].reason == "TOKEN_MISSING"
    request.token = dev_token()
    assert (await proxy.stub().InspectChallenge(request)).key_ids == [KID]
    body = {"challenge": b64url_encode(clearkey_request(KID))}
    async with http.post(f"{proxy.http_url}/v1/challenge:inspect", json=body) as response:
        assert response.status == 401
    headers = {"Authorization": f"Bearer {dev_token()}"}
    async with http.post(
        f"{proxy.http_url}/v1/challenge:inspect", json=body, headers=headers
    ) as response:
        assert response.status == 200


class _RateLimitsFor:
    """Refuses every request with a fractional Retry-After."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds

    @hookimpl
    def proxy_authorize(self, ctx, principal):
        raise ProxyError(Reason.RATE_LIMITED, "slow down", retry_after=self.seconds)


async def test_retry_after_is_rounded_up_on_both_transports(proxy_factory, http, dev_token):
    # 1.2 s rounded down would send the client back 0.2 s too early, into another refusal.
    proxy = await proxy_factory(plugins=[_RateLimitsFor(1.2)])
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await proxy.stub().AcquireLicense(
            pb.AcquireLicenseRequest(challenge=clearkey_request(KID), token=dev_token())
        )
    assert dict(raised.value.trailing_metadata())["retry-after"] == "2"
    async with http.post(
        f"{proxy.http_url}/v1/licenses/clearkey",
        data=clearkey_request(KID),
        headers={"Authorization": f"Bearer {dev_token()}"},
    ) as response:
        assert (response.status, response.headers["Retry-After"]) == (429, "2")


@pytest.mark.parametrize("method", ["AcquireLicense", "InspectChallenge"])
async def test_an_unexpected_grpc_error_is_internal_with_the_request_id(
    proxy_factory, dev_token, caplog, method
):
    proxy = await proxy_factory(proxy_config({"server": {"trusted_proxies": ["127.0.0.0/8"]}}))

    async def broken(request: Any) -> Any:
        raise RuntimeError("a bug that mentions SECRETVALUE")

    # a bug in the core, not in a plugin (the pipeline turns a plugin's into INTERNAL itself)
    proxy.pipeline.acquire = proxy.pipeline.inspect_only = broken
    request_type = getattr(pb, f"{method}Request")
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await getattr(proxy.stub(), method)(
            request_type(challenge=clearkey_request(KID), token=dev_token()),
            metadata=(("x-request-id", "caller-id-7"),),
        )
    status, info = grpc_error(raised.value)
    assert raised.value.code() == grpc.StatusCode.INTERNAL
    assert (info.reason, info.metadata["request_id"]) == ("INTERNAL", "caller-id-7")
    assert "SECRETVALUE" not in raised.value.details() and "SECRETVALUE" not in status.message
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert [r.name for r in errors] == ["proxy.grpc"]


async def test_grpc_reads_a_request_id_header_configured_in_any_case(proxy_factory, dev_token):
    config = proxy_config(
        {"server": {"trusted_proxies": ["127.0.0.0/8"], "request_id_header": "X-Correlation-Id"}}
    )
    proxy = await proxy_factory(config)
    response = await proxy.stub().AcquireLicense(
        pb.AcquireLicenseRequest(challenge=clearkey_request(KID), token=dev_token()),
        metadata=(("x-correlation-id", "grpc-correlation-1"),),
    )
    assert response.request_id == "grpc-correlation-1"


@pytest.mark.parametrize(
    ("body", "detail"),
    [
        ('{"token": ["SECRETVALUE"]}', "field token has a value of the wrong form"),
        ('{"drmSystem": "SECRETVALUE"}', "field drmSystem has a value of the wrong form"),
        ('{"client": {"ipAddress": ["SECRETVALUE"]}}', "field client.ipAddress has"),
        ('{"client": {"device_id": "d"}, "SECRETVALUE": 1}', "a field the message does not define"),
        ('{"client": {"SECRETVALUE": 1}}', "a field the message does not define"),
        ('{"keyIds": "SECRETVALUE"}', "field keyIds has a value of the wrong form"),
        ('{"token": "a", "token": "SECRETVALUE"}', "not valid JSON"),
        ('["SECRETVALUE"]', "the body is not a valid message"),
        ("SECRETVALUE{", "not valid JSON"),
    ],
)
async def test_json_parse_errors_name_the_field_never_the_value(proxy_factory, http, body, detail):
    proxy = await proxy_factory()
    async with http.post(f"{proxy.http_url}/v1/license:acquire", data=body) as response:
        problem = await response.json(content_type=None)
    assert (response.status, problem["reason"]) == (400, "REQUEST_INVALID")
    assert detail in problem["detail"]
    assert "SECRETVALUE" not in json.dumps(problem)
