"""TLS and mutual TLS on both listeners, with real certificates made here: who gets in, who
is trusted, what a bad file does, and rotation on reload without dropping connections."""

from __future__ import annotations

import asyncio
import ssl
import uuid
from pathlib import Path
from typing import Any

import aiohttp
import grpc
import pytest
from prometheus_client import REGISTRY

from licenseproxy.v1 import license_proxy_pb2 as pb
from licenseproxy.v1 import license_proxy_pb2_grpc as pb_grpc
from proxy import hookimpl
from proxy.builder import build_pipeline
from proxy.config import ServerConfig
from proxy.errors import ConfigError
from proxy.server import ProxyApp
from proxy.testing import proxy_config
from proxy.tls import caller_identity, certificate_identities
from tests.conftest import clearkey_request
from tests.tls_support import (
    CertificateAuthority,
    Issued,
    client_context,
    encrypted_key_pem,
    peer_common_name,
)

KID = uuid.UUID("4060a865-8878-4267-9cbf-91ae5bae1e72").bytes
SPIFFE = "spiffe://media.example/ns/packaging/sa/license-client"  # as in docs/access.md


class SeesClient:
    """Records the client facts and request id of every answered request (observer hooks)."""

    def __init__(self) -> None:
        self.clients: list[Any] = []
        self.request_ids: list[str] = []

    def _see(self, ctx: Any) -> None:
        self.clients.append(ctx.request.client)
        self.request_ids.append(ctx.request_id)

    @hookimpl
    def proxy_license_issued(self, ctx, result):
        self._see(ctx)

    @hookimpl
    def proxy_license_denied(self, ctx, error):
        self._see(ctx)


def tls_table(folder: Path, server: Issued, client_ca: CertificateAuthority | None = None) -> dict:
    cert, key = server.write(folder, "server")
    table = {"cert": f"file:{cert}", "key": f"file:{key}"}
    if client_ca is not None:
        table["client_ca"] = f"file:{client_ca.write(folder, 'client-ca')}"
    return table


def tls_config(tls: dict, **server: Any) -> dict:
    return proxy_config({"server": {"grpc": {"tls": tls}, "http": {"tls": tls}, **server}})


def failures(reason: str) -> float:
    labels = {"listener": "http", "reason": reason}
    return REGISTRY.get_sample_value("license_proxy_tls_handshake_failures_total", labels) or 0.0


def requests_seen(transport: str) -> float:
    return sum(
        sample.value
        for metric in REGISTRY.collect()
        if metric.name == "license_proxy_requests"
        for sample in metric.samples
        if sample.name.endswith("_total") and sample.labels.get("transport") == transport
    )


async def http_license(
    url: str, context: ssl.SSLContext | None, token: str, headers: dict | None = None
) -> int:
    """POST a ClearKey challenge; the answer's status."""
    async with (
        aiohttp.ClientSession() as session,
        session.post(
            f"{url}/v1/licenses/clearkey",
            data=clearkey_request(KID),
            headers={"Authorization": f"Bearer {token}", **(headers or {})},
            ssl=context if context is not None else False,
        ) as response,
    ):
        await response.read()
        return response.status


async def served_certificate(port: int, context: ssl.SSLContext) -> str | None:
    """The common name of the certificate a new TLS connection to ``port`` is shown."""
    _, writer = await asyncio.open_connection("127.0.0.1", port, ssl=context)
    try:
        return peer_common_name(writer.get_extra_info("ssl_object"))
    finally:
        writer.close()
        await writer.wait_closed()


def grpc_channel(
    port: int, ca: CertificateAuthority, client: Issued | None = None
) -> grpc.aio.Channel:
    credentials = grpc.ssl_channel_credentials(
        ca.cert_pem,
        client.key_pem if client else None,
        client.cert_pem if client else None,
    )
    return grpc.aio.secure_channel(f"127.0.0.1:{port}", credentials)


async def grpc_license(channel: grpc.aio.Channel, token: str, **fields: Any) -> Any:
    request = pb.AcquireLicenseRequest(
        drm_system=pb.DRM_SYSTEM_CLEARKEY, challenge=clearkey_request(KID), token=token, **fields
    )
    return await pb_grpc.LicenseProxyServiceStub(channel).AcquireLicense(request, timeout=10)


async def test_tls_on_both_listeners_serves_licenses(proxy_factory, tmp_path, dev_token):
    ca = CertificateAuthority()
    proxy = await proxy_factory(tls_config(tls_table(tmp_path, ca.server("proxy-a"))))
    url = f"https://127.0.0.1:{proxy.app.http_port}"
    assert await http_license(url, client_context(ca), dev_token()) == 200
    assert await served_certificate(proxy.app.http_port, client_context(ca)) == "proxy-a"
    channel = grpc_channel(proxy.app.grpc_port, ca)
    try:
        assert (await grpc_license(channel, dev_token())).license
    finally:
        await channel.close()
    # plain HTTP to the TLS port never reaches the bridge, and is counted
    before = failures("plain_http")
    with pytest.raises(aiohttp.ClientError):
        await http_license(url.replace("https:", "http:"), None, dev_token())
    assert failures("plain_http") == before + 1


async def test_mutual_tls_refuses_callers_without_a_certificate_the_ca_signed(
    proxy_factory, tmp_path, dev_token
):
    ca, clients = CertificateAuthority(), CertificateAuthority("Clients")
    strangers = CertificateAuthority("Someone else")
    config = tls_config(tls_table(tmp_path, ca.server(), client_ca=clients))
    proxy = await proxy_factory(config)
    url = f"https://127.0.0.1:{proxy.app.http_port}"
    member = clients.issue("member", uris=(SPIFFE,), client=True)
    outsider = strangers.issue("outsider", uris=(SPIFFE,), client=True)
    expired = clients.issue("expired", uris=(SPIFFE,), client=True, expired=True)
    http_before, grpc_before = requests_seen("http"), requests_seen("grpc")

    missing, rejected = (
        failures("client_certificate_missing"),
        failures("client_certificate_rejected"),
    )
    for client in (None, outsider, expired):
        with pytest.raises(aiohttp.ClientError):
            await http_license(url, client_context(ca, client), dev_token())
    assert failures("client_certificate_missing") == missing + 1
    assert failures("client_certificate_rejected") == rejected + 2
    for client in (None, outsider, expired):
        channel = grpc_channel(proxy.app.grpc_port, ca, client)
        try:
            with pytest.raises(grpc.aio.AioRpcError) as refused:
                await grpc_license(channel, dev_token())
            assert refused.value.code() == grpc.StatusCode.UNAVAILABLE
        finally:
            await channel.close()
    # none of them reached the pipeline
    assert (requests_seen("http"), requests_seen("grpc")) == (http_before, grpc_before)

    assert await http_license(url, client_context(ca, member), dev_token()) == 200
    channel = grpc_channel(proxy.app.grpc_port, ca, member)
    try:
        assert (await grpc_license(channel, dev_token())).license
    finally:
        await channel.close()


async def test_a_trusted_identity_may_speak_for_its_end_user(proxy_factory, tmp_path, dev_token):
    ca, clients = CertificateAuthority(), CertificateAuthority("Clients")
    tls = tls_table(tmp_path, ca.server(), client_ca=clients)
    seen = SeesClient()
    config = tls_config(tls, trusted_callers=[SPIFFE, "dns:packager.media.example"])
    config["access"] = {"ip": {"allow": ["203.0.113.0/24"]}}
    proxy = await proxy_factory(config, plugins=[seen])
    trusted_grpc = clients.issue("svc", uris=(SPIFFE,), client=True)
    trusted_http = clients.issue("edge", dns=("Packager.Media.Example",), client=True)
    untrusted = clients.issue("other", uris=("spiffe://media.example/ns/x/sa/y",), client=True)
    end_user = pb.ClientInfo(ip_address="203.0.113.7", device_id="tv-42")

    for client, allowed in ((trusted_grpc, True), (untrusted, False)):
        channel = grpc_channel(proxy.app.grpc_port, ca, client)
        try:
            call = grpc_license(channel, dev_token(), client=end_user)
            if allowed:
                assert (await call).license
            else:
                with pytest.raises(grpc.aio.AioRpcError) as denied:
                    await call
                assert denied.value.code() == grpc.StatusCode.PERMISSION_DENIED
        finally:
            await channel.close()
    trusted, refused = seen.clients[-2:]
    assert (trusted.ip_address, trusted.device_id, trusted.trusted) == (
        "203.0.113.7",
        "tv-42",
        True,
    )
    assert (refused.ip_address, refused.device_id, refused.trusted) == ("127.0.0.1", None, False)

    # over HTTP the trusted identity's forwarding header and request id are believed
    url = f"https://127.0.0.1:{proxy.app.http_port}"
    headers = {"X-Forwarded-For": "203.0.113.9", "X-Request-Id": "caller-chosen-id"}
    assert await http_license(url, client_context(ca, trusted_http), dev_token(), headers) == 200
    assert (seen.clients[-1].ip_address, seen.request_ids[-1]) == (
        "203.0.113.9",
        "caller-chosen-id",
    )
    status = await http_license(url, client_context(ca, untrusted), dev_token(), headers)
    assert status == 403  # its own address, 127.0.0.1, is not allowed
    assert seen.request_ids[-1] != "caller-chosen-id"


async def test_reload_rotates_certificates_and_keeps_open_connections(tmp_path, dev_token):
    ca_a, ca_b, clients = (
        CertificateAuthority("A"),
        CertificateAuthority("B"),
        CertificateAuthority("Clients"),
    )
    caller = clients.issue("svc", uris=(SPIFFE,), client=True)
    tls = tls_table(tmp_path, ca_a.server("proxy-a"), client_ca=clients)
    config = tls_config(tls)
    config["plugins"] = {"modules": ["tests.plugins.slow:Hold"]}
    app = ProxyApp(build_pipeline(config), rebuild=lambda: build_pipeline(config))
    await app.start()
    url = f"https://127.0.0.1:{app.http_port}"
    old_trust = client_context(ca_a, caller)
    try:
        # an HTTP keep-alive connection and a gRPC channel opened before the rotation
        session = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=1, ssl=old_trust))
        channel = grpc_channel(app.grpc_port, ca_a, caller)
        try:
            assert await _post(session, url, dev_token()) == 200
            assert (await grpc_license(channel, dev_token())).license
            held = asyncio.create_task(_post(session, url, dev_token(), hold=2.0))
            await _until(lambda: app.pipeline.in_flight == 1)
            ca_b.server("proxy-b").write(tmp_path, "server")
            assert await app.reload()
            # the request in flight finishes, and the open connections carry on (a new
            # connection from these clients, which trust only A, would fail now)
            assert await held == 200
            assert await _post(session, url, dev_token()) == 200
            assert (await grpc_license(channel, dev_token())).license
        finally:
            await session.close()
            await channel.close()
        assert await http_license(url, client_context(ca_b, caller), dev_token()) == 200
        assert await served_certificate(app.http_port, client_context(ca_b, caller)) == "proxy-b"
        with pytest.raises(aiohttp.ClientConnectorCertificateError):
            await http_license(url, old_trust, dev_token())
        fresh = grpc_channel(app.grpc_port, ca_b, caller)
        try:
            assert (await grpc_license(fresh, dev_token())).license
        finally:
            await fresh.close()
    finally:
        await app.stop()


async def test_a_bad_file_on_reload_keeps_the_running_certificate(tmp_path, dev_token):
    ca = CertificateAuthority()
    config = tls_config(tls_table(tmp_path, ca.server("proxy-a")))
    app = ProxyApp(build_pipeline(config), rebuild=lambda: build_pipeline(config))
    await app.start()
    try:
        (tmp_path / "server.pem").write_text("not a certificate")
        assert not await app.reload()
        (tmp_path / "server.pem").write_bytes(CertificateAuthority().server().cert_pem)
        assert not await app.reload()  # a certificate whose key is not server.key
        url = f"https://127.0.0.1:{app.http_port}"
        assert await http_license(url, client_context(ca), dev_token()) == 200
        assert await served_certificate(app.http_port, client_context(ca)) == "proxy-a"
        channel = grpc_channel(app.grpc_port, ca)
        try:
            assert (await grpc_license(channel, dev_token())).license
        finally:
            await channel.close()
    finally:
        await app.stop()


async def _post(session: aiohttp.ClientSession, url: str, token: str, hold: float = 0) -> int:
    async with session.post(
        f"{url}/v1/licenses/clearkey",
        data=clearkey_request(KID),
        headers={"Authorization": f"Bearer {token}", "x-hold": str(hold)},
    ) as response:
        await response.read()
        return response.status


async def _until(condition: Any, bound: float = 30.0) -> None:
    """Poll ``condition`` (an outer bound only guards against a hang)."""
    async with asyncio.timeout(bound):
        while True:
            if condition():
                return
            await asyncio.sleep(0.01)


# -- configuration ----------------------------------------------------------------------


def _errors(config: dict) -> list[tuple[str, str]]:
    with pytest.raises(ConfigError) as refused:
        build_pipeline(config)
    return refused.value.errors


@pytest.mark.parametrize(
    ("spoil", "path", "words"),
    [
        (lambda d: (d / "server.pem").unlink(), "server.http.tls.cert", "cannot read"),
        (lambda d: (d / "server.pem").write_text("junk"), "server.http.tls.cert", "no PEM"),
        (lambda d: (d / "server.key").write_text("junk"), "server.http.tls.key", "no PEM"),
        (
            lambda d: (d / "server.key").write_bytes(encrypted_key_pem()),
            "server.http.tls.key",
            "encrypted",
        ),
        (
            lambda d: (d / "server.key").write_bytes(CertificateAuthority().server().key_pem),
            "server.http.tls",
            "not the private key",
        ),
        (lambda d: (d / "client-ca.pem").write_text(""), "server.http.tls.client_ca", "no PEM"),
    ],
)
def test_a_bad_tls_file_fails_the_start_with_its_key_path(tmp_path, spoil, path, words):
    ca = CertificateAuthority()
    tls = tls_table(tmp_path, ca.server(), client_ca=ca)
    spoil(tmp_path)
    config = proxy_config({"server": {"http": {"tls": tls}}})
    errors = _errors(config)
    assert any(p == path and words in message for p, message in errors), errors
    # the message names the file, never its content
    assert not any("BEGIN" in message for _, message in errors)


def test_tls_files_are_file_references(tmp_path):
    errors = _errors(proxy_config({"server": {"grpc": {"tls": {"cert": "x", "key": "env:K"}}}}))
    paths = {p for p, _ in errors}
    assert {"server.grpc.tls.cert", "server.grpc.tls.key"} <= paths
    assert all("file:" in m for p, m in errors if p.startswith("server.grpc.tls"))


def test_trusted_callers_need_a_listener_that_verifies_client_certificates(tmp_path):
    ca = CertificateAuthority()
    config = tls_config(tls_table(tmp_path, ca.server()), trusted_callers=[SPIFFE])
    assert [p for p, _ in _errors(config)] == ["server.trusted_callers"]
    bad = proxy_config({"server": {"trusted_callers": ["just-a-name"]}})
    assert "server.trusted_callers[0]" in {p for p, _ in _errors(bad)}


@pytest.mark.parametrize(
    ("entry", "canonical"),
    [
        (SPIFFE, f"uri:{SPIFFE}"),
        ("uri:https://callers.example/svc", "uri:https://callers.example/svc"),
        ("dns:Packager.Example.", "dns:packager.example"),
        ("DNS:edge.example", "dns:edge.example"),
    ],
)
def test_caller_identities_are_canonical(entry, canonical):
    assert caller_identity(entry) == canonical


@pytest.mark.parametrize("entry", ["packager", "dns:", "dns:a b", "uri:not-a-uri", "ip:10.0.0.1"])
def test_caller_identity_mistakes(entry):
    with pytest.raises(ValueError):
        caller_identity(entry)


def test_certificate_identities_read_dns_and_uri_names_only():
    peercert = {
        "subject": ((("commonName", "trusted-by-name"),),),
        "subjectAltName": (("DNS", "Edge.Example."), ("URI", SPIFFE), ("IP Address", "10.0.0.1")),
    }
    assert certificate_identities(peercert) == {"dns:edge.example", f"uri:{SPIFFE}"}
    assert certificate_identities(None) == frozenset()
    server = ServerConfig()
    assert not server.trusted_caller_set


def test_tls_listener_settings_reload_except_turning_tls_on_or_off(tmp_path):
    from proxy.server import restart_only_changes

    ca = CertificateAuthority()
    plain = build_pipeline(proxy_config())
    with_tls = build_pipeline(tls_config(tls_table(tmp_path, ca.server("a"))))
    rotated_dir = tmp_path / "rotated"
    rotated_dir.mkdir()
    rotated = build_pipeline(tls_config(tls_table(rotated_dir, ca.server("b"))))
    assert restart_only_changes(plain, with_tls) == ["server.grpc", "server.http"]
    assert restart_only_changes(with_tls, rotated) == []


def test_the_trusted_callers_example_of_the_docs_is_a_valid_config(tmp_path):
    import tomllib

    text = (Path(__file__).resolve().parent.parent / "docs" / "access.md").read_text()
    blocks = [b.split("```", 1)[0] for b in text.split("```toml\n")[1:]]
    (block,) = [b for b in blocks if "trusted_callers" in b]
    ca = CertificateAuthority()
    tls_table(tmp_path, ca.server(), client_ca=ca)
    block = (
        block.replace("/etc/license-proxy/tls/tls.crt", str(tmp_path / "server.pem"))
        .replace("/etc/license-proxy/tls/tls.key", str(tmp_path / "server.key"))
        .replace("/etc/license-proxy/client-ca/ca.crt", str(tmp_path / "client-ca.pem"))
    )
    server = ServerConfig.model_validate(tomllib.loads(block)["server"])
    assert f"uri:{SPIFFE}" in server.trusted_caller_set
    assert "dns:edge.media.example" in server.trusted_caller_set
