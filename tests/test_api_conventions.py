"""The gRPC API by the conventions client tooling reads: error details, metadata, dry runs.

- ``google.rpc.RetryInfo`` beside ``ErrorInfo`` on retryable answers, with the pushback
  gRPC's own retry policy obeys; ``Retry-After`` on the HTTP side;
- ``google.rpc.BadRequest`` naming the field of an INVALID_ARGUMENT answer, and the
  problem+json ``invalid_params`` member;
- the request id in the trailing metadata of every answer, a success too;
- dry runs only for trusted callers or tokens carrying ``server.dry_run_claim``.
"""

from __future__ import annotations

import json
from typing import Any

import grpc
import pytest
from google.rpc import error_details_pb2, status_pb2

from licenseproxy.v1 import license_proxy_pb2 as pb
from proxy import ProxyError, Reason, hookimpl
from proxy.encoding import b64url_encode
from proxy.testing import proxy_config
from tests.access_support import KID, KID2
from tests.conftest import clearkey_request


def _details(exc: grpc.aio.AioRpcError) -> dict[str, Any]:
    """Every detail of the status, by type name."""
    trailers = dict(exc.trailing_metadata() or ())
    status = status_pb2.Status.FromString(trailers["grpc-status-details-bin"])
    found: dict[str, Any] = {}
    for detail in status.details:
        for kind in (
            error_details_pb2.ErrorInfo,
            error_details_pb2.RetryInfo,
            error_details_pb2.BadRequest,
        ):
            if detail.Is(kind.DESCRIPTOR):
                message = kind()
                detail.Unpack(message)
                found[kind.DESCRIPTOR.name] = message
    return found


async def _refused(stub: Any, request: pb.AcquireLicenseRequest) -> grpc.aio.AioRpcError:
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await stub.AcquireLicense(request)
    return raised.value


class FailsOnce:
    """Answers DEPENDENCY_UNAVAILABLE (retryable) to the first request, then lets all through."""

    def __init__(self, reason: Reason = Reason.DEPENDENCY_UNAVAILABLE, **kwargs: Any) -> None:
        self.calls = 0
        self.reason = reason
        self.kwargs = kwargs

    @hookimpl(tryfirst=True)
    def proxy_authorize(self, ctx: Any, principal: Any) -> None:
        self.calls += 1
        if self.calls == 1:
            raise ProxyError(self.reason, "the entitlement service is down", **self.kwargs)


def _acquire(token: str, **fields: Any) -> pb.AcquireLicenseRequest:
    return pb.AcquireLicenseRequest(
        drm_system=fields.pop("drm_system", pb.DRM_SYSTEM_CLEARKEY),
        challenge=fields.pop("challenge", clearkey_request(KID)),
        token=token,
        **fields,
    )


async def test_a_retryable_error_carries_retry_info_and_the_pushback(proxy_factory, dev_token):
    proxy = await proxy_factory(plugins=[FailsOnce(retry_after=2.5)])
    error = await _refused(proxy.stub(), _acquire(dev_token()))
    assert error.code() is grpc.StatusCode.UNAVAILABLE
    details = _details(error)
    assert details["ErrorInfo"].reason == "DEPENDENCY_UNAVAILABLE"
    assert details["RetryInfo"].retry_delay.ToMilliseconds() == 2500
    assert "BadRequest" not in details
    trailers = dict(error.trailing_metadata() or ())
    assert trailers["grpc-retry-pushback-ms"] == "2500"
    assert trailers["retry-after"] == "3"


async def test_a_retryable_error_without_its_own_delay_advises_one_second(
    proxy_factory, dev_token, http
):
    proxy = await proxy_factory(plugins=[FailsOnce(Reason.STATE_UNAVAILABLE)])
    error = await _refused(proxy.stub(), _acquire(dev_token()))
    assert _details(error)["RetryInfo"].retry_delay.seconds == 1
    second = await _refused(proxy.stub(), _acquire(dev_token(), key_ids=[b"short"]))
    assert "RetryInfo" not in _details(second), "a bad request is not worth retrying"
    assert "grpc-retry-pushback-ms" not in dict(second.trailing_metadata() or ())

    failing = await proxy_factory(plugins=[FailsOnce(Reason.STATE_UNAVAILABLE)])
    url = f"{failing.http_url}/v1/licenses/clearkey"
    headers = {"Authorization": f"Bearer {dev_token()}"}
    async with http.post(url, data=clearkey_request(KID), headers=headers) as answer:
        assert answer.status == 503
        assert answer.headers["Retry-After"] == "1"


async def test_a_refusal_not_worth_retrying_carries_no_retry_info(proxy_factory, dev_token):
    proxy = await proxy_factory(plugins=[FailsOnce(Reason.NOT_ENTITLED)])
    error = await _refused(proxy.stub(), _acquire(dev_token()))
    details = _details(error)
    assert details["ErrorInfo"].reason == "NOT_ENTITLED"
    assert set(details) == {"ErrorInfo"}
    assert "retry-after" not in dict(error.trailing_metadata() or ())


@pytest.mark.parametrize(
    ("fields", "field"),
    [
        ({"key_ids": [KID, b"\x01" * 15]}, "key_ids[1]"),
        ({"key_ids": [KID2]}, "key_ids[0]"),  # not among the challenge's key ids
        ({"challenge": b"{not json"}, "challenge"),
        ({"drm_system": 42}, "drm_system"),
        ({"client": pb.ClientInfo(ip_address="not an address")}, "client.ip_address"),
        ({"client": pb.ClientInfo(device_id="d" * 600)}, "client.device_id"),
        ({"dry_run": True}, "dry_run"),
    ],
)
async def test_an_invalid_argument_names_the_field_to_blame(
    proxy_factory, dev_token, fields, field
):
    # Loopback is trusted here, so the client fields are read (and the dry run case sets
    # a claim the token lacks).
    config = proxy_config(
        {"server": {"trusted_proxies": ["127.0.0.0/8"]}} if "client" in fields else {}
    )
    proxy = await proxy_factory(config)
    error = await _refused(proxy.stub(), _acquire(dev_token(), **fields))
    assert error.code() is grpc.StatusCode.INVALID_ARGUMENT
    details = _details(error)
    [violation] = details["BadRequest"].field_violations
    assert violation.field == field
    assert violation.description == error.details()
    assert "RetryInfo" not in details


async def test_problem_json_carries_the_field_as_invalid_params(proxy_factory, dev_token, http):
    proxy = await proxy_factory()
    body = {
        "drmSystem": "DRM_SYSTEM_CLEARKEY",
        "challenge": b64url_encode(clearkey_request(KID)),
        "token": dev_token(),
        "keyIds": [b64url_encode(KID), b64url_encode(b"\x02" * 17)],
    }
    async with http.post(f"{proxy.http_url}/v1/license:acquire", json=body) as answer:
        assert answer.status == 400
        problem = json.loads(await answer.read())
    assert problem["reason"] == "REQUEST_INVALID"
    assert problem["invalid_params"] == [
        {"name": "key_ids[1]", "reason": "a key id is not 16 bytes"}
    ]
    async with http.post(
        f"{proxy.http_url}/v1/license:acquire", json={**body, "client": {"ipAddress": 7}}
    ) as answer:
        problem = json.loads(await answer.read())
    assert problem["invalid_params"][0]["name"] == "client.ip_address"
    url = f"{proxy.http_url}/v1/licenses/clearkey?key_id=zz"
    async with http.post(url, data=clearkey_request(KID)) as answer:
        problem = json.loads(await answer.read())
    assert problem["invalid_params"] == [{"name": "key_id", "reason": "key_id is not a key id"}]
    # An unreadable challenge blames the challenge; a refusal that is no INVALID_ARGUMENT
    # blames no field.
    async with http.post(f"{proxy.http_url}/v1/licenses/clearkey", data=b"{") as answer:
        problem = json.loads(await answer.read())
    assert (problem["reason"], problem["invalid_params"][0]["name"]) == (
        "CHALLENGE_INVALID",
        "challenge",
    )
    url = f"{proxy.http_url}/v1/licenses/clearkey"
    async with http.post(url, data=clearkey_request(KID)) as answer:
        problem = json.loads(await answer.read())
    assert problem["reason"] == "TOKEN_MISSING" and "invalid_params" not in problem


async def test_every_answer_carries_the_request_id_in_its_metadata(proxy_factory, dev_token):
    proxy = await proxy_factory()
    stub = proxy.stub()
    call = stub.AcquireLicense(_acquire(dev_token()))
    response = await call
    trailers = dict(await call.trailing_metadata())
    assert trailers["x-request-id"] == response.request_id != ""
    # No initial metadata of our own: sent apart from the message it costs a write per call.
    assert "x-request-id" not in dict(await call.initial_metadata())

    refused = stub.AcquireLicense(_acquire("not-a-token"))
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await refused
    # An error is a trailers-only answer: headers sent first would commit the call, and
    # the client's retry policy could not retry it (test_api_contract.py retries).
    assert dict(await refused.initial_metadata()) == {}
    trailers = dict(raised.value.trailing_metadata() or ())
    assert trailers["x-request-id"] != ""

    inspected = stub.InspectChallenge(
        pb.InspectChallengeRequest(challenge=clearkey_request(KID)),
        metadata=(("x-request-id", "from-an-untrusted-caller"),),
    )
    answer = await inspected
    trailers = dict(await inspected.trailing_metadata())
    assert trailers["x-request-id"] == answer.request_id
    assert answer.request_id != "from-an-untrusted-caller"


# -- dry runs --------------------------------------------------------------------------


async def test_a_dry_run_from_an_untrusted_caller_is_refused_on_both_transports(
    proxy_factory, dev_token, http
):
    proxy = await proxy_factory()
    error = await _refused(proxy.stub(), _acquire(dev_token(), dry_run=True))
    assert _details(error)["ErrorInfo"].reason == "REQUEST_INVALID"
    assert "dry_run" in error.details()
    body = {
        "drmSystem": "DRM_SYSTEM_CLEARKEY",
        "challenge": b64url_encode(clearkey_request(KID)),
        "token": dev_token(),
        "dryRun": True,
    }
    async with http.post(f"{proxy.http_url}/v1/license:acquire", json=body) as answer:
        assert answer.status == 400
        problem = json.loads(await answer.read())
    assert problem["reason"] == "REQUEST_INVALID"
    assert problem["invalid_params"][0]["name"] == "dry_run"
    assert "trace" not in problem and "policy" not in json.dumps(problem)


async def test_a_dry_run_needs_the_claim_when_the_caller_is_not_trusted(proxy_factory, dev_token):
    proxy = await proxy_factory(proxy_config({"server": {"dry_run_claim": "lp_dry_run"}}))
    stub = proxy.stub()
    for claims in ({}, {"lp_dry_run": False}, {"lp_dry_run": "true"}):
        error = await _refused(stub, _acquire(dev_token(claims), dry_run=True))
        assert _details(error)["BadRequest"].field_violations[0].field == "dry_run", claims
        assert "lp_dry_run" in error.details()
    answer = await stub.AcquireLicense(_acquire(dev_token({"lp_dry_run": True}), dry_run=True))
    assert answer.dry_run and answer.license == b"" and answer.trace
    # A license request with the claim is an ordinary request.
    issued = await stub.AcquireLicense(_acquire(dev_token({"lp_dry_run": True})))
    assert issued.license and not issued.dry_run


async def test_a_trusted_caller_may_dry_run_but_a_client_behind_it_may_not(
    proxy_factory, dev_token
):
    proxy = await proxy_factory(proxy_config({"server": {"trusted_proxies": ["127.0.0.1/32"]}}))
    stub = proxy.stub()
    answer = await stub.AcquireLicense(_acquire(dev_token(), dry_run=True))
    assert answer.dry_run and answer.trace
    # The trusted proxy forwards an outside client: the request does not originate from
    # a trusted caller, so the dry run is refused.
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await stub.AcquireLicense(
            _acquire(dev_token(), dry_run=True),
            metadata=(("x-forwarded-for", "203.0.113.9"),),
        )
    assert raised.value.code() is grpc.StatusCode.INVALID_ARGUMENT
    assert "dry_run" in raised.value.details()


async def test_a_refused_dry_run_reads_no_token_and_spends_nothing(proxy_factory):
    class Counts:
        calls = 0

        @hookimpl(tryfirst=True)
        def proxy_authenticate(self, ctx: Any) -> None:
            Counts.calls += 1

    proxy = await proxy_factory(plugins=[Counts()])
    await _refused(proxy.stub(), _acquire("whatever", dry_run=True))
    assert Counts.calls == 0, "refused before any plugin ran"
