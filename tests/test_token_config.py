"""``[auth]`` configuration: every mistake fails at start with its exact key path, and nothing
secret ends up in an error message."""

from __future__ import annotations

import json
import re
import tomllib
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.hazmat.primitives.serialization import (
    Encoding,
    NoEncryption,
    PrivateFormat,
    PublicFormat,
)
from cryptography.x509.oid import NameOID

from plugins.access.state import StateRules
from proxy.errors import ConfigError
from proxy.testing import FakeClock
from tests.token_support import (
    ISSUER,
    KeyServer,
    build_token_plugin,
    ec_key,
    issuer,
    public_jwk,
    rsa_key,
)


def pem(private_key) -> str:
    return (
        private_key.public_key()
        .public_bytes(Encoding.PEM, PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )


def errors_of(auth: dict, **kwargs) -> dict[str, str]:
    with pytest.raises(ConfigError) as raised:
        build_token_plugin(auth, **kwargs)
    return dict(raised.value.errors)


def one_issuer(**overrides) -> dict:
    return {"issuers": [issuer(**overrides)]}


SHORT_SECRET = "hex:" + "ab" * 20


@pytest.mark.parametrize(
    ("auth", "path", "words"),
    [
        (
            one_issuer(algorithms=["HS256"], keys=[{"secret": SHORT_SECRET}]),
            "auth.issuers[0].keys[0].secret",
            "20 bytes; HS256 needs at least 32",
        ),
        (
            one_issuer(algorithms=["HS256", "HS512"], keys=[{"secret": "hex:" + "ab" * 40}]),
            "auth.issuers[0].keys[0].secret",
            "HS512 needs at least 64",
        ),
        (
            one_issuer(keys=[{"public_key": pem(rsa_key("small", 1024))}]),
            "auth.issuers[0].keys[0].public_key",
            "at least 2048 bits",
        ),
        (
            one_issuer(
                keys=[{"public_key": "-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----"}]
            ),
            "auth.issuers[0].keys[0].public_key",
            "not a PEM public key",
        ),
        (
            one_issuer(keys=[{"public_key": "x", "secret": "y" * 40}]),
            "auth.issuers[0].keys[0]",
            "exactly one of",
        ),
        (
            one_issuer(keys=[{"public_key": pem(rsa_key()), "algorithm": "ES256"}]),
            "auth.issuers[0].keys[0].public_key",
            "does not fit this RSA key",
        ),
        (
            one_issuer(algorithms=["ES256"], keys=[{"public_key": pem(rsa_key())}]),
            "auth.issuers[0].keys[0].public_key",
            "can verify none of the issuer's algorithms",
        ),
        (
            one_issuer(algorithms=["RS256", "HS1"]),
            "auth.issuers[0].algorithms",
            "unsupported algorithm 'HS1'",
        ),
        (
            one_issuer(algorithms=["none"]),
            "auth.issuers[0].algorithms",
            "unsupported algorithm 'none'",
        ),
        (one_issuer(), "auth.issuers[0]", "needs keys, a jwks_uri or an openid_configuration"),
        (
            one_issuer(jwks_uri="https://a.test/keys", openid_configuration="https://a.test/"),
            "auth.issuers[0]",
            "not both",
        ),
        (
            one_issuer(jwks_uri="http://sts.example.test/keys"),
            "auth.issuers[0].jwks_uri",
            "must be an https URL",
        ),
        (
            one_issuer(openid_configuration="sts.example.test"),
            "auth.issuers[0].openid_configuration",
            "not an absolute URL",
        ),
        (
            one_issuer(jwks_uri="https://sts.example.test/keys", algorithms=["HS256"]),
            "auth.issuers[0].jwks_uri",
            "HS* algorithms need a secret",
        ),
        (
            one_issuer(
                jwks_uri="https://sts.example.test/keys",
                refresh={"min_interval": "1h", "max_interval": "5m", "interval": "10m"},
            ),
            "auth.issuers[0].refresh",
            "min_interval is larger than max_interval",
        ),
        (
            one_issuer(jwks_uri="https://sts.example.test/keys", refresh={"interval": "10s"}),
            "auth.issuers[0].refresh",
            "interval must lie between",
        ),
        (
            one_issuer(
                keys=[{"jwk": json.dumps(dict(public_jwk(ec_key("p384", "P-384")), crv="P-256"))}]
            ),
            "auth.issuers[0].keys[0].jwk",
            "invalid EC JWK",
        ),
        (
            one_issuer(keys=[{"jwk": "{not json"}]),
            "auth.issuers[0].keys[0].jwk",
            "not a JSON Web Key",
        ),
        (
            one_issuer(keys=[{"jwks": json.dumps({"keys": [{"kty": "RSA", "use": "enc"}]})}]),
            "auth.issuers[0].keys[0].jwks",
            "holds no key usable",
        ),
        (
            one_issuer(keys=[{"secret": "env:TOKEN_TEST_UNSET_VARIABLE"}], algorithms=["HS256"]),
            "auth.issuers[0].keys[0].secret",
            "TOKEN_TEST_UNSET_VARIABLE",
        ),
        (
            {"issuers": [issuer(keys=[{"public_key": pem(rsa_key())}])] * 2},
            "auth.issuers[1].issuer",
            "listed twice",
        ),
        ({"cache_size": -1, "issuers": []}, "auth.cache_size", "greater than or equal to 0"),
        ({"issuers": [], "typo": 1}, "auth.typo", "unknown key"),
    ],
)
def test_config_errors_name_their_key_path(auth, path, words):
    errors = errors_of(auth)
    assert path in errors, errors
    assert words in errors[path]


def test_a_private_key_given_as_public_key_is_refused_without_echoing_it(tmp_path):
    private = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    text = private.private_bytes(Encoding.PEM, PrivateFormat.PKCS8, NoEncryption()).decode()
    path = tmp_path / "key.pem"
    path.write_text(text)
    errors = errors_of(one_issuer(keys=[{"public_key": f"file:{path}"}]))
    message = errors["auth.issuers[0].keys[0].public_key"]
    assert "private key" in message
    body = text.splitlines()[1]
    assert all(body not in m for m in errors.values())


def test_a_short_secret_error_names_the_reference_not_the_value(monkeypatch):
    monkeypatch.setenv("STS_SHARED_SECRET", "tiny-secret-value")
    errors = errors_of(one_issuer(algorithms=["HS256"], keys=[{"secret": "env:STS_SHARED_SECRET"}]))
    message = errors["auth.issuers[0].keys[0].secret"]
    assert "env:STS_SHARED_SECRET" in message and "tiny-secret-value" not in message


def test_the_development_issuer_is_refused_on_a_public_listener():
    auth = {
        "issuers": [
            issuer(
                development=True,
                algorithms=["HS256"],
                keys=[{"secret": "hex:" + "ab" * 32}],
            )
        ]
    }
    public = {"http": {"host": "192.0.2.10", "port": 0}}  # built, never bound
    errors = errors_of(auth, server=public)
    assert "auth.issuers[0].development" in errors


def test_an_expired_certificate_warns_but_still_serves():
    clock = FakeClock()
    key = rsa_key()
    now = datetime.fromtimestamp(clock.time(), UTC)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "old sts")])
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(7)
        .not_valid_before(now - timedelta(days=400))
        .not_valid_after(now - timedelta(days=35))
        .sign(key, hashes.SHA256())
    )
    auth = one_issuer(keys=[{"certificate": cert.public_bytes(Encoding.PEM).decode()}])
    _, pipeline = build_token_plugin(auth, clock=clock)
    warnings = dict(pipeline.warnings)
    assert "expired" in warnings["auth.issuers[0].keys[0].certificate"]


def test_trust_policy_claims_is_an_issuer_setting_off_by_default():
    auth = {
        "issuers": [
            issuer(keys=[{"public_key": pem(rsa_key())}]),
            issuer(
                issuer="https://vmx.example.test/",
                trust_policy_claims=True,
                keys=[{"public_key": pem(rsa_key())}],
            ),
        ]
    }
    plugin, _ = build_token_plugin(auth)
    settings = {name: i.config.trust_policy_claims for name, i in plugin.verifier.issuers.items()}
    assert settings == {ISSUER: False, "https://vmx.example.test/": True}


async def test_check_config_fetches_no_keys():
    server = await KeyServer(keys=[public_jwk(rsa_key("k1"), "k1")]).start()
    try:
        plugin, _ = build_token_plugin({"issuers": [issuer(jwks_uri=server.jwks_uri)]})
        assert len(plugin.remote) == 1 and not plugin.remote[0].running
        assert server.requests == 0
    finally:
        await server.stop()


def test_every_example_in_the_auth_docs_is_a_valid_config(tmp_path, monkeypatch):
    monkeypatch.setenv("PLAYBACK_STS_SECRET", "s" * 32)
    docs = (Path(__file__).parent.parent / "docs" / "auth.md").read_text()
    blocks = re.findall(r"```toml\n(.*?)```", docs, re.DOTALL)
    assert len(blocks) >= 4
    for block in blocks:
        for reference in re.findall(r'"file:([^"]+)"', block):
            local = tmp_path / Path(reference).name
            local.write_bytes(b"n" * 32)
            block = block.replace(f"file:{reference}", f"file:{local}")
        auth = tomllib.loads(block)["auth"]
        # renewal_grace needs the plugin that records license sessions
        plugin, _ = build_token_plugin(auth, beside=(("access_state", StateRules()),))
        assert plugin.verifier is not None and plugin.verifier.issuers
