"""Cold start while the identity provider is down: valid tokens can't be judged yet, which is
KEY_SOURCE_UNAVAILABLE (retryable, Retry-After), never TOKEN_KEY_UNKNOWN ("bad token"). Once
the keys were fetched, an outage changes nothing: the last good keys serve."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator

import grpc
import pytest
import pytest_asyncio
from google.rpc import error_details_pb2

from licenseproxy.v1 import license_proxy_pb2 as pb
from plugins.token import jwks
from proxy.testing import proxy_config
from tests.conftest import clearkey_request
from tests.test_transports import grpc_error
from tests.token_support import (
    KID,
    KeyServer,
    acquire,
    claims,
    eventually,
    issuer,
    public_jwk,
    rsa_key,
    sign,
)


@pytest.fixture(autouse=True)
def fast_schedule(monkeypatch):
    """The refresh loop looks at the (fake) clock every 10 ms instead of every second."""
    monkeypatch.setattr(jwks, "POLL_SECONDS", 0.01)


@pytest_asyncio.fixture
async def down_key_server() -> AsyncIterator[KeyServer]:
    """A key server that answers 503 until a test lets it serve."""
    server = await KeyServer(keys=[public_jwk(rsa_key("k1"), "k1")], fail_with=503).start()
    try:
        yield server
    finally:
        await server.stop()


def _config(server: KeyServer) -> dict:
    refresh = {"timeout": "2s", "retry_interval": "10s", "unknown_kid_interval": "1s"}
    return proxy_config({"auth": {"issuers": [issuer(jwks_uri=server.jwks_uri, refresh=refresh)]}})


async def test_a_key_source_never_reached_is_key_source_unavailable_on_both_transports(
    proxy_factory, http, down_key_server, fake_clock
):
    proxy = await proxy_factory(_config(down_key_server), clock=fake_clock)
    await eventually(lambda: down_key_server.jwks_requests >= 1, "the first fetch was tried")
    token = sign(claims(fake_clock.time()), rsa_key("k1"), kid="k1")
    async with http.post(
        f"{proxy.http_url}/v1/licenses/clearkey",
        data=clearkey_request(KID),
        headers={"Authorization": f"Bearer {token}"},
    ) as response:
        problem = json.loads(await response.read())
        assert response.status == 503
        assert int(response.headers["Retry-After"]) >= 1
    assert problem["reason"] == "KEY_SOURCE_UNAVAILABLE"
    request = pb.AcquireLicenseRequest(
        drm_system=pb.DRM_SYSTEM_CLEARKEY, challenge=clearkey_request(KID), token=token
    )
    with pytest.raises(grpc.aio.AioRpcError) as failure:
        await proxy.stub().AcquireLicense(request)
    assert failure.value.code() == grpc.StatusCode.UNAVAILABLE
    status, info = grpc_error(failure.value)
    assert info.reason == "KEY_SOURCE_UNAVAILABLE"
    retry = error_details_pb2.RetryInfo()
    assert any(detail.Unpack(retry) for detail in status.details)
    assert retry.retry_delay.ToNanoseconds() >= 1_000_000_000
    assert dict(failure.value.trailing_metadata())["retry-after"]


async def test_once_keys_were_fetched_an_outage_keeps_them_serving(
    proxy_factory, http, down_key_server, fake_clock
):
    proxy = await proxy_factory(_config(down_key_server), clock=fake_clock)
    token = sign(claims(fake_clock.time()), rsa_key("k1"), kid="k1")
    await eventually(lambda: down_key_server.jwks_requests >= 1, "the first fetch was tried")
    assert await acquire(proxy, http, token) == "KEY_SOURCE_UNAVAILABLE"
    # The identity provider comes back: the next try loads the keys.
    down_key_server.fail_with = None
    fake_clock.advance(11)
    assert await acquire(proxy, http, token) == "OK"
    # It goes down again: the last good keys serve, and an unknown kid is a bad token now.
    down_key_server.fail_with = 503
    fake_clock.advance(2)
    assert await acquire(proxy, http, token) == "OK"
    stranger = sign(claims(fake_clock.time()), rsa_key("k9"), kid="k9")
    assert await acquire(proxy, http, stranger) == "TOKEN_KEY_UNKNOWN"
