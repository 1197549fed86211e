"""``license-proxy token`` mints tokens the proxy accepts: the development key by default, or
any key given by reference."""

from __future__ import annotations

import time

from cryptography.hazmat.primitives.serialization import (
    Encoding,
    NoEncryption,
    PrivateFormat,
    PublicFormat,
)

from proxy.cli import main
from proxy.testing import FakeClock
from tests.token_support import (
    AUDIENCE,
    ISSUER,
    acquire,
    build_token_plugin,
    ec_key,
    issuer,
    reason,
)


async def test_the_development_token_is_accepted_by_the_embedded_default(
    proxy_factory, http, capsys
):
    assert main(["token", "sub=bob", 'groups=["a","b"]']) == 0
    token = capsys.readouterr().out.strip()
    assert token.count(".") == 2
    proxy = await proxy_factory()
    assert await acquire(proxy, http, token) == "OK"


async def test_a_token_signed_with_a_key_by_reference(tmp_path, capsys):
    private = ec_key("cli", "P-256")
    key_file = tmp_path / "sts.pem"
    key_file.write_bytes(private.private_bytes(Encoding.PEM, PrivateFormat.PKCS8, NoEncryption()))
    argv = ["token", "--key", f"file:{key_file}", "--alg", "ES256", "--kid", "cli-1"]
    assert main([*argv, "--iss", ISSUER, "--aud", AUDIENCE, "sub=carol"]) == 0
    token = capsys.readouterr().out.strip()
    public = private.public_key().public_bytes(Encoding.PEM, PublicFormat.SubjectPublicKeyInfo)
    auth = {
        "issuers": [
            issuer(algorithms=["ES256"], keys=[{"id": "cli-1", "public_key": public.decode()}])
        ]
    }
    plugin, _ = build_token_plugin(auth, clock=FakeClock(time.time()))
    assert await reason(plugin, token) == "OK"
    principal = await plugin.verifier.verify(token)
    assert (principal.subject, principal.key_id) == ("carol", "cli-1")
