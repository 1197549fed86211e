"""gRPC input the transport used to answer itself: bytes that are no protobuf message, and
input over grpc's own limits. Each meets our error model now, up to a generous bound."""

from __future__ import annotations

import logging
import uuid

import grpc
import pytest

from licenseproxy.v1 import license_proxy_pb2 as pb
from proxy.grpc_limits import MAX_METADATA_ENTRIES
from tests.conftest import clearkey_request
from tests.test_transports import grpc_error

KID = uuid.UUID("4060a865-8878-4267-9cbf-91ae5bae1e72").bytes
SERVICE = "/licenseproxy.v1.LicenseProxyService"
MIB = 1024 * 1024


@pytest.mark.parametrize("method", ["AcquireLicense", "InspectChallenge"])
@pytest.mark.parametrize(
    "raw",
    [
        pytest.param(bytes(range(256)) * 4, id="random-bytes"),
        pytest.param(b"\x12\x80", id="truncated-varint"),
        pytest.param(b"\x1a\x02\xff\xfe", id="invalid-utf8-in-a-string-field"),
    ],
)
async def test_bytes_that_are_no_message_are_request_invalid_with_one_warning(
    proxy_factory, caplog, method, raw
):
    proxy = await proxy_factory()
    call = proxy.channel().unary_unary(f"{SERVICE}/{method}")
    with caplog.at_level(logging.DEBUG), pytest.raises(grpc.aio.AioRpcError) as failure:
        await call(raw)
    assert failure.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    _, info = grpc_error(failure.value)
    assert info.reason == "REQUEST_INVALID"
    assert info.metadata["request_id"]
    assert "DecodeError" not in failure.value.details()
    warnings = [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert len(warnings) == 1
    assert warnings[0].levelno == logging.WARNING
    assert not any(r.exc_info or r.exc_text for r in caplog.records)


async def test_a_one_mib_challenge_is_challenge_too_large_not_a_transport_error(proxy_factory):
    proxy = await proxy_factory()
    request = pb.AcquireLicenseRequest(
        drm_system=pb.DRM_SYSTEM_WIDEVINE, challenge=b"\x08" * MIB, token="t"
    )
    with pytest.raises(grpc.aio.AioRpcError) as failure:
        await proxy.stub().AcquireLicense(request)
    _, info = grpc_error(failure.value)
    assert info.reason == "CHALLENGE_TOO_LARGE"
    assert info.metadata["request_id"]


async def test_thousands_of_metadata_entries_are_request_invalid(proxy_factory, dev_token):
    proxy = await proxy_factory()
    metadata = tuple((f"x-entry-{i}", "v" * 10) for i in range(5000))
    request = pb.AcquireLicenseRequest(
        drm_system=pb.DRM_SYSTEM_CLEARKEY, challenge=clearkey_request(KID), token=dev_token()
    )
    with pytest.raises(grpc.aio.AioRpcError) as failure:
        await proxy.stub().AcquireLicense(request, metadata=metadata)
    _, info = grpc_error(failure.value)
    assert info.reason == "REQUEST_INVALID"
    assert str(MAX_METADATA_ENTRIES) in failure.value.details()


async def test_a_200_kib_token_in_metadata_is_token_malformed(proxy_factory):
    proxy = await proxy_factory()
    request = pb.AcquireLicenseRequest(
        drm_system=pb.DRM_SYSTEM_CLEARKEY, challenge=clearkey_request(KID)
    )
    token = "e" * (200 * 1024)
    with pytest.raises(grpc.aio.AioRpcError) as failure:
        await proxy.stub().AcquireLicense(request, metadata=(("authorization", f"Bearer {token}"),))
    _, info = grpc_error(failure.value)
    assert info.reason == "TOKEN_MALFORMED"


async def test_beyond_the_transport_limit_grpc_answers_itself(proxy_factory):
    """What docs/operations.md says lies beyond: a message over 4 MiB (with the default
    limits) is grpc's own RESOURCE_EXHAUSTED."""
    proxy = await proxy_factory()
    request = pb.AcquireLicenseRequest(
        drm_system=pb.DRM_SYSTEM_WIDEVINE, challenge=b"\x08" * (5 * MIB), token="t"
    )
    with pytest.raises(grpc.aio.AioRpcError) as failure:
        await proxy.stub().AcquireLicense(request)
    assert failure.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
