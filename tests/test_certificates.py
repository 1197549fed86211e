"""``GET /v1/certificates/{widevine|fairplay}`` and gRPC ``GetCertificate``: the Widevine
service certificate of the backend a policy elects (through the vendor emulators and the
per-backend cache), the FairPlay application certificate from config or from a vendor's
URL (a real HTTP server on loopback), tokens optional per config, CORS, and HTTP caching."""

from __future__ import annotations

import base64
import datetime
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import grpc
import pytest
import pytest_asyncio
from aiohttp import web
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from licenseproxy.v1 import license_proxy_pb2 as pb
from proxy.builder import build_pipeline
from proxy.certificates import der_certificate
from proxy.errors import ConfigError
from proxy.problem_types import INSUFFICIENT_PROOF
from proxy.testing import proxy_config
from proxy.testing.emulator import SERVICE_CERTIFICATE

PAGE = "http://player.example.test"
WIDEVINE_BY_DRM = {
    "name": "widevine-for-anyone",
    "priority": 1,
    "match": {"drm_systems": ["widevine"]},
    "backends": ["widevine_cloud"],
}


def make_certificate(*, days: int = 365) -> x509.Certificate:
    """A self-signed stand-in for a FairPlay application certificate."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "fps test")])
    now = datetime.datetime.now(datetime.UTC)
    start, end = (now - datetime.timedelta(days=400), now + datetime.timedelta(days=days))
    return (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(7)
        .not_valid_before(start)
        .not_valid_after(end)
        .sign(key, hashes.SHA256())
    )


def der(certificate: x509.Certificate) -> bytes:
    return certificate.public_bytes(serialization.Encoding.DER)


async def get(http: Any, url: str, **headers: str) -> tuple[int, bytes, Any]:
    async with http.get(url, headers=headers) as response:
        return response.status, await response.read(), response.headers


@pytest_asyncio.fixture
async def fps_server() -> AsyncIterator[dict[str, Any]]:
    """A vendor's certificate URL on loopback: what it serves is set by the test."""
    state: dict[str, Any] = {"status": 200, "body": b"", "hits": 0}

    async def serve(request: web.Request) -> web.Response:
        state["hits"] += 1
        return web.Response(status=state["status"], body=state["body"])

    app = web.Application()
    app.router.add_get("/fps/cert", serve)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    state["url"] = f"http://127.0.0.1:{port}/fps/cert"
    try:
        yield state
    finally:
        await runner.cleanup()


# -- Widevine ----------------------------------------------------------------------------


async def test_the_elected_backends_service_certificate_cached_with_cache_control(
    proxy_factory, vendor_sandbox, http, dev_token
):
    config = vendor_sandbox.config(
        proxy_config({"server": {"certificates": {"require_token": True}}})
    )
    proxy = await proxy_factory(config)
    url = f"{proxy.http_url}/v1/certificates/widevine"
    token = dev_token({"sub": "dev", "vendor": "axinom"})
    status, body, headers = await get(http, url, Authorization=f"Bearer {token}", Origin=PAGE)
    assert (status, body) == (200, SERVICE_CERTIFICATE)
    assert headers["Content-Type"] == "application/octet-stream"
    assert headers["Cache-Control"] == "private, max-age=3600"
    assert headers["Access-Control-Allow-Origin"] == "*"
    etag = headers["ETag"]
    received = len(vendor_sandbox["axinom"].state.received)
    assert received == 1 and vendor_sandbox["axinom"].state.last.body == b"\x08\x04"
    # The second player is answered from the backend's cache; a player that has it gets 304.
    status, body, _ = await get(http, url, Authorization=f"Bearer {token}")
    assert (status, body) == (200, SERVICE_CERTIFICATE)
    status, body, headers = await get(
        http, url, Authorization=f"Bearer {token}", **{"If-None-Match": etag}
    )
    assert (status, body, headers["ETag"]) == (304, b"", etag)
    assert len(vendor_sandbox["axinom"].state.received) == received
    # Another vendor elected by the token's claim: its own backend, its own cache entry.
    token = dev_token({"sub": "dev", "vendor": "widevine_cloud"})
    status, body, _ = await get(http, url, Authorization=f"Bearer {token}")
    assert (status, body) == (200, SERVICE_CERTIFICATE)
    assert len(vendor_sandbox["widevine_cloud"].state.received) == 1


async def test_without_require_token_no_token_is_read(proxy_factory, vendor_sandbox, http):
    config = vendor_sandbox.config(proxy_config())
    config["policies"].append(WIDEVINE_BY_DRM)
    proxy = await proxy_factory(config)
    url = f"{proxy.http_url}/v1/certificates/widevine"
    status, body, headers = await get(http, url)
    assert (status, body) == (200, SERVICE_CERTIFICATE)
    assert headers["Cache-Control"] == "public, max-age=3600"
    # A broken token is not even looked at: certificates are public.
    status, _, _ = await get(http, url, Authorization="Bearer not.a.token")
    assert status == 200


async def test_require_token_refuses_without_one(proxy_factory, vendor_sandbox, http):
    config = vendor_sandbox.config(
        proxy_config({"server": {"certificates": {"require_token": True}}})
    )
    proxy = await proxy_factory(config)
    status, body, _ = await get(http, f"{proxy.http_url}/v1/certificates/widevine")
    problem = json.loads(body)
    assert (status, problem["reason"], problem["type"]) == (
        401,
        "TOKEN_MISSING",
        INSUFFICIENT_PROOF,
    )


async def test_a_backend_outage_is_its_reason(proxy_factory, vendor_sandbox, http):
    config = vendor_sandbox.config(proxy_config())
    config["policies"].append(WIDEVINE_BY_DRM)
    proxy = await proxy_factory(config)
    vendor_sandbox["widevine_cloud"].fault.set("error", status=503)
    status, body, _ = await get(http, f"{proxy.http_url}/v1/certificates/widevine")
    assert (status, json.loads(body)["reason"]) == (502, "UPSTREAM_UNAVAILABLE")


async def test_no_policy_serving_widevine(proxy_factory, http):
    proxy = await proxy_factory()  # the embedded default: ClearKey only
    status, body, _ = await get(http, f"{proxy.http_url}/v1/certificates/widevine")
    assert (status, json.loads(body)["reason"]) == (400, "DRM_NOT_SUPPORTED")


@pytest.mark.parametrize("drm", ["clearkey", "playready", "betamax"])
async def test_other_drms_have_no_certificate_route(proxy_factory, http, drm):
    proxy = await proxy_factory()
    status, body, _ = await get(http, f"{proxy.http_url}/v1/certificates/{drm}")
    assert (status, json.loads(body)["reason"]) == (400, "DRM_NOT_SUPPORTED")


# -- FairPlay ----------------------------------------------------------------------------


def fairplay_config(tmp_path: Path, certificate: bytes) -> dict:
    path = tmp_path / "fps.pem"
    path.write_bytes(certificate)
    return proxy_config({"challenge": {"fairplay": {"application_certificate": f"file:{path}"}}})


async def test_the_application_certificate_from_config_on_both_transports(
    proxy_factory, http, tmp_path
):
    certificate = make_certificate()
    pem = certificate.public_bytes(serialization.Encoding.PEM)
    proxy = await proxy_factory(fairplay_config(tmp_path, pem))
    status, body, headers = await get(http, f"{proxy.http_url}/v1/certificates/fairplay")
    assert (status, body) == (200, der(certificate))
    assert headers["Cache-Control"] == "public, max-age=86400"
    response = await proxy.stub().GetCertificate(
        pb.GetCertificateRequest(drm_system=pb.DRM_SYSTEM_FAIRPLAY)
    )
    assert response.certificate == der(certificate)
    assert (response.source, response.backend, response.max_age_seconds) == ("config", "", 86400)
    assert response.request_id


def test_a_configured_certificate_is_checked_at_start(tmp_path):
    with pytest.raises(ConfigError) as caught:
        build_pipeline(fairplay_config(tmp_path, b"not a certificate"))
    [(path, message)] = caught.value.errors
    assert path == "challenge.fairplay.application_certificate"
    assert "file:" in message and "not an X.509 certificate" in message
    expired = build_pipeline(fairplay_config(tmp_path, der(make_certificate(days=-1))))
    assert any("expired" in m for p, m in expired.warnings if p.endswith("certificate"))


def fairplay_backend_config(vendor_sandbox: Any, url: str | None) -> dict:
    config = vendor_sandbox.config(
        proxy_config({"server": {"certificates": {"require_token": True}}})
    )
    if url is not None:
        config["backends"]["axinom"]["fairplay_certificate_url"] = url
    return config


async def test_the_application_certificate_from_the_vendor_cached(
    proxy_factory, vendor_sandbox, http, dev_token, fps_server
):
    certificate = der(make_certificate())
    fps_server["body"] = base64.b64encode(certificate)  # served as base64 text, as some do
    proxy = await proxy_factory(fairplay_backend_config(vendor_sandbox, fps_server["url"]))
    token = dev_token({"sub": "dev", "vendor": "axinom"})
    url = f"{proxy.http_url}/v1/certificates/fairplay"
    for _ in range(2):
        status, body, _ = await get(http, url, Authorization=f"Bearer {token}")
        assert (status, body) == (200, certificate)
    assert fps_server["hits"] == 1
    response = await proxy.stub().GetCertificate(
        pb.GetCertificateRequest(drm_system=pb.DRM_SYSTEM_FAIRPLAY, token=token)
    )
    assert (response.source, response.backend, response.policy) == (
        "backend",
        "axinom",
        "sandbox-axinom",
    )


@pytest.mark.parametrize(
    ("status", "body", "reason"),
    [
        (404, b"", "UPSTREAM_REJECTED"),
        (500, b"", "UPSTREAM_UNAVAILABLE"),
        (200, b"<html>maintenance</html>", "UPSTREAM_BAD_RESPONSE"),
    ],
)
async def test_a_vendor_certificate_url_that_fails(
    proxy_factory, vendor_sandbox, http, dev_token, fps_server, status, body, reason
):
    fps_server.update(status=status, body=body)
    proxy = await proxy_factory(fairplay_backend_config(vendor_sandbox, fps_server["url"]))
    token = dev_token({"sub": "dev", "vendor": "axinom"})
    _, answer, _ = await get(
        http, f"{proxy.http_url}/v1/certificates/fairplay", Authorization=f"Bearer {token}"
    )
    assert json.loads(answer)["reason"] == reason


async def test_no_certificate_anywhere_is_a_configuration_mistake(
    proxy_factory, vendor_sandbox, http, dev_token
):
    proxy = await proxy_factory(fairplay_backend_config(vendor_sandbox, None))
    token = dev_token({"sub": "dev", "vendor": "axinom"})
    status, body, _ = await get(
        http, f"{proxy.http_url}/v1/certificates/fairplay", Authorization=f"Bearer {token}"
    )
    problem = json.loads(body)
    assert (status, problem["reason"]) == (500, "BACKEND_NOT_CONFIGURED")
    assert "application_certificate" in problem["detail"]


# -- gRPC ---------------------------------------------------------------------------------


async def test_grpc_get_certificate_for_widevine_and_its_errors(
    proxy_factory, vendor_sandbox, dev_token
):
    config = vendor_sandbox.config(
        proxy_config({"server": {"certificates": {"require_token": True}}})
    )
    proxy = await proxy_factory(config)
    stub = proxy.stub()
    token = dev_token({"sub": "dev", "vendor": "verimatrix"})
    response = await stub.GetCertificate(
        pb.GetCertificateRequest(drm_system=pb.DRM_SYSTEM_WIDEVINE),
        metadata=(("authorization", f"Bearer {token}"),),
    )
    assert response.certificate == SERVICE_CERTIFICATE
    assert (response.backend, response.max_age_seconds) == ("verimatrix", 3600)
    for message, code in (
        (pb.GetCertificateRequest(), grpc.StatusCode.INVALID_ARGUMENT),
        (
            pb.GetCertificateRequest(drm_system=pb.DRM_SYSTEM_CLEARKEY),
            grpc.StatusCode.INVALID_ARGUMENT,
        ),
        (
            pb.GetCertificateRequest(drm_system=pb.DRM_SYSTEM_WIDEVINE),
            grpc.StatusCode.UNAUTHENTICATED,
        ),
    ):
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await stub.GetCertificate(message)
        assert caught.value.code() == code


def test_certificate_forms_vendors_serve():
    certificate = der(make_certificate())
    pem = base64.encodebytes(certificate)
    assert der_certificate(certificate) == certificate
    assert (
        der_certificate(b"-----BEGIN CERTIFICATE-----\n" + pem + b"-----END CERTIFICATE-----\n")
        == certificate
    )
    assert der_certificate(base64.b64encode(certificate) + b"\n") == certificate
    for junk in (b"", b"<html/>", base64.b64encode(b"not der"), b"\x30" * (65 * 1024)):
        assert der_certificate(junk) is None
