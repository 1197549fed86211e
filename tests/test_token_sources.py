"""Where tokens come from, on both transports: the gRPC ``token`` field, ``authorization``
metadata, ``Authorization: Bearer``, a configured header and a configured query parameter,
with the size limit checked before any parsing."""

from __future__ import annotations

import grpc
import pytest
from google.rpc import error_details_pb2, status_pb2

from licenseproxy.v1 import license_proxy_pb2 as pb
from plugins.token.config import AuthConfig
from plugins.token.sources import find_token
from proxy.errors import ProxyError
from proxy.model import LicenseRequest
from proxy.testing import proxy_config
from tests.conftest import clearkey_request
from tests.token_support import KID, acquire


def header_config(**auth) -> dict:
    return proxy_config({"auth": auth})


async def grpc_reason(proxy, *, token: str = "", metadata: tuple = ()) -> str:
    request = pb.AcquireLicenseRequest(
        drm_system=pb.DRM_SYSTEM_CLEARKEY, challenge=clearkey_request(KID), token=token
    )
    try:
        await proxy.stub().AcquireLicense(request, metadata=metadata or None)
    except grpc.aio.AioRpcError as exc:
        raw = dict(exc.trailing_metadata() or ())["grpc-status-details-bin"]
        info = error_details_pb2.ErrorInfo()
        status_pb2.Status.FromString(raw).details[0].Unpack(info)
        return info.reason
    return "OK"


async def test_every_source_on_both_transports(proxy_factory, http, dev_token):
    proxy = await proxy_factory(header_config(header="X-Player-Token", query_parameter="token"))
    token = dev_token()
    # gRPC: the token field, authorization metadata, the configured header as metadata.
    assert await grpc_reason(proxy, token=token) == "OK"
    assert await grpc_reason(proxy, metadata=(("authorization", f"Bearer {token}"),)) == "OK"
    assert await grpc_reason(proxy, metadata=(("x-player-token", token),)) == "OK"
    assert await grpc_reason(proxy) == "TOKEN_MISSING"
    # HTTP: Authorization, the configured header, the query parameter.
    assert await acquire(proxy, http, token) == "OK"
    assert await acquire(proxy, http, None, **{"X-Player-Token": token}) == "OK"
    async with http.post(
        f"{proxy.http_url}/v1/licenses/clearkey",
        data=clearkey_request(KID),
        params={"token": token},
    ) as response:
        assert response.status == 200
    assert await acquire(proxy, http, None) == "TOKEN_MISSING"


async def test_the_token_field_wins_over_metadata(proxy_factory, dev_token):
    proxy = await proxy_factory()
    metadata = (("authorization", "Bearer not-a-token"),)
    assert await grpc_reason(proxy, token=dev_token(), metadata=metadata) == "OK"
    assert await grpc_reason(proxy, metadata=metadata) == "TOKEN_MALFORMED"


async def test_a_header_or_query_parameter_is_read_only_when_configured(
    proxy_factory, http, dev_token
):
    proxy = await proxy_factory()
    assert await acquire(proxy, http, None, **{"X-Player-Token": dev_token()}) == "TOKEN_MISSING"


async def test_cors_preflight_allows_the_configured_header(proxy_factory, http):
    proxy = await proxy_factory(header_config(header="X-Player-Token"))
    async with http.options(
        f"{proxy.http_url}/v1/licenses/clearkey",
        headers={
            "Origin": "https://player.example.test",
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "x-player-token",
        },
    ) as response:
        allowed = response.headers["Access-Control-Allow-Headers"].lower()
    assert "x-player-token" in allowed and "authorization" in allowed


@pytest.mark.parametrize(
    ("headers", "query", "expected"),
    [
        ({"authorization": "Bearer abc"}, {}, "abc"),
        ({"authorization": "bearer   abc  "}, {}, "abc"),
        ({"authorization": "Basic dXNlcjpwdw=="}, {}, ProxyError),
        ({"authorization": "Bearer "}, {}, ProxyError),
        ({"authorization": "Basic dXNlcjpwdw==", "x-player-token": "abc"}, {}, "abc"),
        ({"x-player-token": "Bearer abc"}, {}, "abc"),
        ({}, {"token": "abc"}, "abc"),
        ({"x-player-token": "from-header"}, {"token": "from-query"}, "from-header"),
        ({}, {}, None),
    ],
)
def test_find_token(headers, query, expected):
    settings = AuthConfig(header="X-Player-Token", query_parameter="token")
    request = LicenseRequest(challenge=b"x", headers=headers, query=query)
    if expected is ProxyError:
        with pytest.raises(ProxyError) as raised:
            find_token(request, settings)
        assert raised.value.reason.value == "TOKEN_MALFORMED"
    else:
        assert find_token(request, settings) == expected


async def test_the_size_limit_applies_before_parsing(proxy_factory, http, dev_token):
    proxy = await proxy_factory(proxy_config({"server": {"max_token_bytes": 1024}}))
    assert await acquire(proxy, http, dev_token()) == "OK"
    big = dev_token({"padding": "x" * 1024})
    assert await acquire(proxy, http, big) == "TOKEN_MALFORMED"
    assert await grpc_reason(proxy, token=big) == "TOKEN_MALFORMED"
    # Not even base64: refused on size alone.
    assert await acquire(proxy, http, "%" * 1025) == "TOKEN_MALFORMED"
