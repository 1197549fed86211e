"""The state store over TLS with an ACL user: a real redis-server that insists on both.

The server listens with TLS only for clients (client certificates required),
its default user is off, and one ACL user may run what the scripts need. The
proxy connects with the CA, its client certificate and the user's password
from the environment; a wrong password is STATE_UNAVAILABLE and names no secret.
"""

from __future__ import annotations

import datetime
import ipaddress
import logging
from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from proxy.testing import proxy_config
from proxy.testing.redis import RedisServer, free_port, redis_binary
from tests.access_support import grpc_call

PASSWORD = "s3cret-state-password"


def _certificate(
    name: str, key: ec.EllipticCurvePrivateKey, issuer: tuple | None, *, ca: bool = False
) -> x509.Certificate:
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    signer_name, signer_key = issuer if issuer else (subject, key)
    now = datetime.datetime.now(datetime.UTC)
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(signer_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
    )
    if not ca:
        builder = builder.add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
    return builder.sign(signer_key, hashes.SHA256())


def _write(path: Path, certificate: x509.Certificate, key: ec.EllipticCurvePrivateKey) -> None:
    path.with_suffix(".crt").write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    path.with_suffix(".key").write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )


@pytest.fixture(scope="module")
def tls_redis(tmp_path_factory) -> Iterator[tuple[RedisServer, int, Path]]:
    if redis_binary() is None:
        pytest.skip("redis-server is not installed (make redis-server installs it)")
    folder = tmp_path_factory.mktemp("tls")
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca = _certificate("state test CA", ca_key, None, ca=True)
    _write(folder / "ca", ca, ca_key)
    for name in ("server", "client"):
        key = ec.generate_private_key(ec.SECP256R1())
        _write(folder / name, _certificate(name, key, (ca.subject, ca_key)), key)
    tls_port = free_port()
    options = (
        "--tls-port", str(tls_port),
        "--tls-cert-file", str(folder / "server.crt"),
        "--tls-key-file", str(folder / "server.key"),
        "--tls-ca-cert-file", str(folder / "ca.crt"),
        "--tls-auth-clients", "yes",
        # one config line per --option: "user default off", "user proxy on >... ~* +@all"
        "--user", "default", "off",
        "--user", "proxy", "on", f">{PASSWORD}", "~*", "+@all",
    )  # fmt: skip
    server = RedisServer(args=options)
    server.start()
    try:
        yield server, tls_port, folder
    finally:
        server.stop()


def _config(port: int, folder: Path, password_ref: str) -> dict:
    state = {
        "store": f"rediss://127.0.0.1:{port}/0",
        "username": "proxy",
        "password": password_ref,
        "timeout": "2s",
        "tls": {
            "ca": f"file:{folder / 'ca.crt'}",
            "cert": f"file:{folder / 'client.crt'}",
            "key": f"file:{folder / 'client.key'}",
        },
    }
    return proxy_config({"access": {"state": state, "replay": {}}})


async def test_tls_with_a_client_certificate_and_an_acl_user(
    tls_redis, proxy_factory, dev_token, monkeypatch
):
    _server, port, folder = tls_redis
    monkeypatch.setenv("STATE_PASSWORD", PASSWORD)
    proxy = await proxy_factory(_config(port, folder, "env:STATE_PASSWORD"))
    token = dev_token()
    assert (await grpc_call(proxy, token)).ok
    assert (await grpc_call(proxy, token)).reason == "TOKEN_REPLAYED"


async def test_a_wrong_password_is_state_unavailable_and_names_no_secret(
    tls_redis, proxy_factory, dev_token, monkeypatch, caplog
):
    _server, port, folder = tls_redis
    monkeypatch.setenv("STATE_PASSWORD", "not-the-password")
    proxy = await proxy_factory(_config(port, folder, "env:STATE_PASSWORD"))
    with caplog.at_level(logging.WARNING):
        answer = await grpc_call(proxy, dev_token())
    assert answer.reason == "STATE_UNAVAILABLE"
    assert "not-the-password" not in caplog.text and "not-the-password" not in answer.detail
    assert "state store" in caplog.text  # the outage is logged, without the secret
