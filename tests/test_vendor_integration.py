"""Through the proxy to each registered vendor (its emulator, or itself when it answers locally),
over gRPC and HTTP, on real loopback sockets."""

from __future__ import annotations

import json
import uuid
from typing import Any

import grpc
import pytest
from google.rpc import error_details_pb2, status_pb2

from licenseproxy.v1 import license_proxy_pb2 as pb
from proxy.challenge import samples
from proxy.model import DrmSystem
from proxy.testing import proxy_config
from proxy.testing.emulator import SERVICE_CERTIFICATE, license_facts
from tests import vendor_matrix

KID_SD = uuid.UUID("0a8b1c2d-3e4f-4a5b-8c6d-7e8f9a0b1c2d").bytes
KID_HD = uuid.UUID("1b2c3d4e-5f60-4172-8394-a5b6c7d8e9f0").bytes
#: The registered vendors reached over HTTP (an emulator stands for each), by DRM served.
VENDORS = vendor_matrix.emulated(DrmSystem.WIDEVINE)
PLAYREADY_VENDORS = vendor_matrix.emulated(DrmSystem.PLAYREADY)
FAIRPLAY_VENDORS = vendor_matrix.emulated(DrmSystem.FAIRPLAY)
DRM_ENUM = {
    "widevine": pb.DRM_SYSTEM_WIDEVINE,
    "playready": pb.DRM_SYSTEM_PLAYREADY,
    "fairplay": pb.DRM_SYSTEM_FAIRPLAY,
    "clearkey": pb.DRM_SYSTEM_CLEARKEY,
}


def widevine_challenge() -> bytes:
    return samples.widevine_license_request(key_ids=[KID_SD, KID_HD], content_id=b"movie-1")


def playready_challenge() -> bytes:
    return samples.playready_challenge(samples.wrm_header("4.3.0.0", [KID_SD, KID_HD]))


async def http_license(proxy: Any, http: Any, token: str, drm: str, body: bytes, **query: str):
    """POST to the player route: (status, content type, body, problem or None)."""
    async with http.post(
        f"{proxy.http_url}/v1/licenses/{drm}",
        data=body,
        headers={"Authorization": f"Bearer {token}"},
        params=query,
    ) as response:
        data = await response.read()
        problem = json.loads(data) if response.content_type == "application/problem+json" else None
        return response.status, response.headers.get("Content-Type", ""), data, problem


async def grpc_license(proxy: Any, token: str, drm: str, challenge: bytes, **fields: Any):
    """AcquireLicense over gRPC: (response or None, ErrorInfo or None, status code)."""
    timeout = fields.pop("timeout", 30)
    request = pb.AcquireLicenseRequest(
        drm_system=DRM_ENUM[drm], challenge=challenge, token=token, **fields
    )
    try:
        response = await proxy.stub().AcquireLicense(request, timeout=timeout)
    except grpc.aio.AioRpcError as exc:
        raw = dict(exc.trailing_metadata() or ()).get("grpc-status-details-bin")
        info = None
        if raw:
            info = error_details_pb2.ErrorInfo()
            status_pb2.Status.FromString(raw).details[0].Unpack(info)
        return None, info, exc.code()
    return response, None, grpc.StatusCode.OK


@pytest.fixture
async def sandbox_proxy(vendor_sandbox, proxy_factory):
    """A proxy with a backend per registered vendor (one policy per vendor, by claim)."""
    return await proxy_factory(vendor_sandbox.config(proxy_config()))


def challenge_for(drm: DrmSystem) -> tuple[bytes, str]:
    """A license challenge for ``drm`` naming both keys, and the content id to send with it."""
    if drm is DrmSystem.WIDEVINE:
        return widevine_challenge(), "movie-1"
    if drm is DrmSystem.PLAYREADY:
        return playready_challenge(), "movie-1"
    if drm is DrmSystem.FAIRPLAY:
        return samples.fairplay_spc(), f"skd://{uuid.UUID(bytes=KID_SD)}"
    return samples.clearkey_request(KID_SD, KID_HD), "movie-1"


@pytest.mark.parametrize(
    ("vendor", "drm"), vendor_matrix.sandboxed(), ids=lambda v: getattr(v, "value", v)
)
async def test_every_vendor_serves_each_of_its_drms_over_both_transports(
    vendor, drm, vendor_sandbox, sandbox_proxy, dev_token, http
):
    token = dev_token({"sub": "alice", "vendor": vendor})
    challenge, content_id = challenge_for(drm)
    response, info, code = await grpc_license(
        sandbox_proxy, token, drm.value, challenge, content_id=content_id
    )
    assert code is grpc.StatusCode.OK, info
    assert (response.vendor, response.backend) == (vendor, vendor)
    status, _, body, problem = await http_license(
        sandbox_proxy, http, token, drm.value, challenge, content_id=content_id
    )
    assert status == 200, problem
    if vendor_sandbox.is_local(vendor):
        assert body == response.license  # the same keys, whichever transport asked
    else:
        assert license_facts(drm.value, body)["vendor"] == vendor
        assert vendor_sandbox[vendor].state.last.headers["X-Request-Id"]


@pytest.mark.parametrize("vendor", VENDORS)
async def test_widevine_license_over_both_transports(
    vendor, vendor_sandbox, sandbox_proxy, dev_token, http
):
    token = dev_token({"sub": "alice", "vendor": vendor})
    response, info, code = await grpc_license(
        sandbox_proxy, token, "widevine", widevine_challenge()
    )
    assert code is grpc.StatusCode.OK, info
    assert response.vendor == vendor
    assert response.backend == vendor
    facts = license_facts("widevine", response.license)
    assert facts["vendor"] == vendor
    status, content_type, body, problem = await http_license(
        sandbox_proxy, http, token, "widevine", widevine_challenge()
    )
    assert status == 200, problem
    assert content_type == "application/octet-stream"
    assert license_facts("widevine", body)["vendor"] == vendor
    correlation = vendor_sandbox[vendor].state.last.headers["X-Request-Id"]
    assert correlation


async def test_axinom_license_carries_the_policy_and_identity_headers(
    vendor_sandbox, sandbox_proxy, dev_token
):
    token = dev_token({"sub": "alice", "vendor": "axinom"})
    response, _, _ = await grpc_license(sandbox_proxy, token, "widevine", widevine_challenge())
    facts = license_facts("widevine", response.license)
    assert facts["keys"] == [str(uuid.UUID(bytes=KID_SD)), str(uuid.UUID(bytes=KID_HD))]
    assert facts["license"]["duration"] == 172800
    assert facts["session"] == {"user_id": "alice"}
    assert response.vendor_metadata["x-axdrm-identity"] == "Axinom DRM - Widevine API"
    assert not any("message" in key for key in response.vendor_metadata)


@pytest.mark.parametrize("vendor", PLAYREADY_VENDORS)
async def test_playready_license_is_soap_xml(vendor, sandbox_proxy, dev_token, http):
    token = dev_token({"sub": "alice", "vendor": vendor})
    status, content_type, body, problem = await http_license(
        sandbox_proxy, http, token, "playready", playready_challenge(), content_id="movie-1"
    )
    assert status == 200, problem
    assert content_type.startswith("text/xml")
    assert license_facts("playready", body)["vendor"] == vendor


@pytest.mark.parametrize("vendor", FAIRPLAY_VENDORS)
@pytest.mark.parametrize("framing", ("raw", "form", "json"))
async def test_fairplay_player_framings_get_the_raw_ckc(
    vendor, framing, vendor_sandbox, sandbox_proxy, dev_token, http
):
    spc = samples.fairplay_spc()
    body = {"raw": spc, "form": samples.fairplay_form(spc), "json": samples.fairplay_json(spc)}[
        framing
    ]
    token = dev_token({"sub": "alice", "vendor": vendor})
    key_uri = f"skd://{uuid.UUID(bytes=KID_SD)}"
    status, _, ckc, problem = await http_license(
        sandbox_proxy, http, token, "fairplay", body, content_id=key_uri
    )
    assert status == 200, problem
    assert ckc.startswith(b"CKC1")
    assert license_facts("fairplay", ckc)["vendor"] == vendor
    received = vendor_sandbox[vendor].state.last
    if vendor == "axinom":
        assert received.body == spc
    elif vendor == "verimatrix":
        assert received.decoded["sub"] == str(uuid.UUID(bytes=KID_SD))


@pytest.mark.parametrize("vendor", VENDORS)
async def test_service_certificate_is_forwarded_once_then_cached(
    vendor, vendor_sandbox, sandbox_proxy, dev_token, http
):
    token = dev_token({"sub": "alice", "vendor": vendor})
    emulator = vendor_sandbox[vendor]
    for _ in range(3):
        status, _, body, problem = await http_license(
            sandbox_proxy, http, token, "widevine", b"\x08\x04"
        )
        assert status == 200, problem
        assert body == SERVICE_CERTIFICATE
    assert len(emulator.state.received) == 1


async def test_a_vendor_refusal_reaches_the_caller_with_its_code(
    vendor_sandbox, sandbox_proxy, dev_token, http
):
    vendor_sandbox["verimatrix"].fault.set("reject", code="MDRM-1011")
    token = dev_token({"sub": "alice", "vendor": "verimatrix"})
    _, info, code = await grpc_license(sandbox_proxy, token, "widevine", widevine_challenge())
    assert code is grpc.StatusCode.FAILED_PRECONDITION
    assert info.reason == "UPSTREAM_REJECTED"
    assert info.metadata["vendor_code"] == "MDRM-1011"
    assert info.metadata["vendor_status"] == "404"
    vendor_sandbox["axinom"].fault.set("reject")
    token = dev_token({"sub": "alice", "vendor": "axinom"})
    status, _, _, problem = await http_license(
        sandbox_proxy, http, token, "widevine", widevine_challenge()
    )
    assert status == 403
    assert problem["reason"] == "UPSTREAM_REJECTED"
    assert "revoked" in problem["metadata"]["vendor_message"]


async def test_widevine_cloud_refusal_at_http_200(vendor_sandbox, sandbox_proxy, dev_token):
    vendor_sandbox["widevine_cloud"].fault.set("reject", code="ACCESS_DENIED")
    token = dev_token({"sub": "alice", "vendor": "widevine_cloud"})
    _, info, code = await grpc_license(sandbox_proxy, token, "widevine", widevine_challenge())
    assert code is grpc.StatusCode.FAILED_PRECONDITION
    assert info.metadata["vendor_code"] == "ACCESS_DENIED"
    assert info.metadata["vendor_internal_status"] == "127"


async def test_playready_fault_through_the_proxy(vendor_sandbox, sandbox_proxy, dev_token, http):
    vendor_sandbox["axinom"].fault.set("reject")
    token = dev_token({"sub": "alice", "vendor": "axinom"})
    status, _, _, problem = await http_license(
        sandbox_proxy, http, token, "playready", playready_challenge()
    )
    assert status == 403
    assert problem["metadata"]["vendor_code"] == "0x8004C065"


async def test_a_wrong_vendor_key_is_refused_by_the_emulator(
    vendor_sandbox, proxy_factory, dev_token
):
    config = vendor_sandbox.config(proxy_config())
    config["backends"]["axinom"]["com_key"] = "base64:" + "A" * 43 + "="
    proxy = await proxy_factory(config)
    token = dev_token({"sub": "alice", "vendor": "axinom"})
    _, info, code = await grpc_license(proxy, token, "widevine", widevine_challenge())
    assert code is grpc.StatusCode.FAILED_PRECONDITION
    assert "signature" in info.metadata["vendor_message"]


async def test_azure_passthrough_forwards_the_customer_token(
    vendor_sandbox, proxy_factory, dev_token
):
    from plugins.vendors.azure import emulator as azure
    from proxy.testing.emulator import start_emulator
    from proxy.tokens import development_key

    emulator = await start_emulator(
        azure.make_app("license-proxy-dev", "license-proxy", development_key()[1])
    )
    try:
        config = vendor_sandbox.config(proxy_config())
        config["backends"]["azure"] = {
            "vendor": "azure",
            "bearer": "passthrough",
            "urls": {"widevine": f"{emulator.url}/Widevine/"},
            "widevine_request": "template",
        }
        proxy = await proxy_factory(config)
        token = dev_token({"sub": "alice", "vendor": "azure"})
        _, info, code = await grpc_license(proxy, token, "widevine", widevine_challenge())
        assert code is grpc.StatusCode.OK, info
        assert emulator.state.last.headers["Authorization"] == f"Bearer {token}"
    finally:
        await emulator.stop()


async def test_upstream_counters_are_exported(sandbox_proxy, dev_token, http):
    token = dev_token({"sub": "alice", "vendor": "axinom"})
    await grpc_license(sandbox_proxy, token, "widevine", widevine_challenge())
    async with http.get(f"{sandbox_proxy.admin_url}/metrics") as response:
        text = await response.text()
    assert 'license_proxy_upstream_calls_total{backend="axinom",outcome="ok"}' in text
    assert 'license_proxy_circuit_state{backend="axinom"} 0.0' in text


#: A Widevine renewal: it names the license it renews, and no key.
RENEWAL = samples.widevine_license_request(form="existing_license", request_type=2)


@pytest.mark.parametrize("vendor", VENDORS)
async def test_a_widevine_renewal_is_served_through_every_vendor(
    vendor, vendor_sandbox, sandbox_proxy, dev_token
):
    """Regression: Axinom (REQUEST_INVALID) and Azure's {kid} URLs refused renewals."""
    token = dev_token({"sub": "alice", "vendor": vendor})
    response, info, code = await grpc_license(
        sandbox_proxy, token, "widevine", RENEWAL, content_id="movie-1"
    )
    assert code is grpc.StatusCode.OK, info
    facts = license_facts("widevine", response.license)
    assert facts["vendor"] == vendor
    received = vendor_sandbox[vendor].state.last
    if vendor == "axinom":
        assert facts["request_type"] == "renewal"
        assert facts["keys"] == []
    if vendor == "azure":
        assert received.path == "/Widevine/" and "kid" not in received.query


async def test_an_azure_renewal_with_a_key_id_hint_goes_to_the_key_url(
    vendor_sandbox, sandbox_proxy, dev_token
):
    token = dev_token({"sub": "alice", "vendor": "azure"})
    _, info, code = await grpc_license(
        sandbox_proxy, token, "widevine", RENEWAL, content_id="movie-1", key_ids=[KID_SD]
    )
    assert code is grpc.StatusCode.OK, info
    assert vendor_sandbox["azure"].state.last.query["kid"] == str(uuid.UUID(bytes=KID_SD))
