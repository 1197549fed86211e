"""Every algorithm and every inline key source, the claim checks, and the verification cache."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from cryptography.x509.oid import NameOID

from proxy.testing import FakeClock
from tests.token_support import (
    AUDIENCE,
    ISSUER,
    build_token_plugin,
    claims,
    ec_key,
    ed_key,
    issuer,
    public_jwk,
    reason,
    rsa_key,
    sign,
)

SECRET = bytes(range(64))


def pem(private_key) -> str:
    return (
        private_key.public_key()
        .public_bytes(Encoding.PEM, PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )


def certificate(private_key, *, days: int = 365, clock: FakeClock | None = None) -> str:
    now = datetime.fromtimestamp((clock or FakeClock()).time(), UTC)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "sts.example.test")])
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(private_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(days=days + 1) if days < 0 else now - timedelta(days=1))
        .not_valid_after(now + timedelta(days=days))
        .sign(private_key, None if isinstance(private_key, Ed25519PrivateKey) else hashes.SHA256())
    )
    return cert.public_bytes(Encoding.PEM).decode()


ASYMMETRIC = [
    ("RS256", lambda: rsa_key()),
    ("RS384", lambda: rsa_key()),
    ("RS512", lambda: rsa_key()),
    ("PS256", lambda: rsa_key()),
    ("PS384", lambda: rsa_key()),
    ("PS512", lambda: rsa_key()),
    ("ES256", lambda: ec_key("ec", "P-256")),
    ("ES384", lambda: ec_key("ec", "P-384")),
    ("ES512", lambda: ec_key("ec", "P-521")),
    ("EdDSA", lambda: ed_key()),
]


@pytest.mark.parametrize(("alg", "make"), ASYMMETRIC, ids=[a for a, _ in ASYMMETRIC])
@pytest.mark.parametrize("source", ["public_key", "certificate", "jwk", "jwks"])
async def test_every_asymmetric_algorithm_from_every_inline_source(alg, make, source, tmp_path):
    private = make()
    clock = FakeClock()
    material = {
        "public_key": lambda: pem(private),
        "certificate": lambda: certificate(private, clock=clock),
        "jwk": lambda: json.dumps(public_jwk(private)),
        "jwks": lambda: json.dumps({"keys": [public_jwk(private, "k1")]}),
    }[source]()
    path = tmp_path / "key"
    path.write_text(material)
    key = {source: f"file:{path}"}
    if source != "jwks":
        key["id"] = "k1"
    plugin, _ = build_token_plugin({"issuers": [issuer(algorithms=[alg], keys=[key])]}, clock=clock)
    token = sign(claims(clock.time()), private, alg)
    assert await reason(plugin, token) == "OK"
    principal = await plugin.verifier.verify(token)
    assert (principal.subject, principal.issuer, principal.key_id) == ("alice", ISSUER, "k1")
    assert principal.claims["aud"] == AUDIENCE
    assert principal.leeway == 30.0 and principal.trusts_policy_claims is False


@pytest.mark.parametrize("alg", ["HS256", "HS384", "HS512"])
async def test_hmac_algorithms_with_a_secret_by_reference(alg, monkeypatch):
    monkeypatch.setenv("TEST_STS_SECRET", SECRET.hex())
    clock = FakeClock()
    auth = {"issuers": [issuer(algorithms=[alg], keys=[{"secret": f"hex:{SECRET.hex()}"}])]}
    plugin, _ = build_token_plugin(auth, clock=clock)
    assert await reason(plugin, sign(claims(clock.time()), SECRET, alg, kid=None)) == "OK"
    # An id-less secret also serves tokens that carry a kid of their own.
    assert await reason(plugin, sign(claims(clock.time()), SECRET, alg, kid="sts-1")) == "OK"
    assert await reason(plugin, sign(claims(clock.time()), SECRET[::-1], alg)) == (
        "TOKEN_SIGNATURE_INVALID"
    )


async def test_a_key_pinned_to_one_algorithm_refuses_its_siblings():
    private = rsa_key()
    clock = FakeClock()
    auth = {
        "issuers": [
            issuer(
                algorithms=["RS256", "PS256"],
                keys=[{"id": "k1", "public_key": pem(private), "algorithm": "PS256"}],
            )
        ]
    }
    plugin, _ = build_token_plugin(auth, clock=clock)
    assert await reason(plugin, sign(claims(clock.time()), private, "PS256")) == "OK"
    assert await reason(plugin, sign(claims(clock.time()), private, "RS256")) == (
        "TOKEN_ALGORITHM_REJECTED"
    )


async def test_a_jwk_alg_member_pins_the_key():
    private = rsa_key()
    clock = FakeClock()
    jwk = json.dumps(public_jwk(private, "k1", alg="RS512"))
    auth = {"issuers": [issuer(algorithms=["RS256", "RS512"], keys=[{"jwk": jwk}])]}
    plugin, _ = build_token_plugin(auth, clock=clock)
    assert await reason(plugin, sign(claims(clock.time()), private, "RS512")) == "OK"
    assert await reason(plugin, sign(claims(clock.time()), private, "RS256")) == (
        "TOKEN_ALGORITHM_REJECTED"
    )


async def test_real_identity_providers_key_sets_load():
    # Entra (x5c beside n/e, no alg) and Google (alg RS256) key sets, as published.
    from tests.conftest import DATA

    for name, count in (("entra-common", 7), ("google", 2)):
        doc = (DATA / "oidc" / f"{name}.jwks.json").read_text()
        plugin, _ = build_token_plugin({"issuers": [issuer(keys=[{"jwks": doc}])]})
        issuer_keys = plugin.verifier.issuers[ISSUER].keys
        assert len(issuer_keys) == count
        assert all(k.family == "RSA" and k.id for k in issuer_keys.keys)


# -- claims ---------------------------------------------------------------------------


def _claims_plugin(clock: FakeClock, **overrides):
    private = rsa_key()
    auth = {"issuers": [issuer(keys=[{"id": "k1", "public_key": pem(private)}], **overrides)]}
    plugin, _ = build_token_plugin(auth, clock=clock)
    return plugin, lambda **c: sign(claims(clock.time(), **c), private)


CLAIM_CASES = [
    ({}, {}, "OK"),
    ({}, {"exp": -3600}, "TOKEN_EXPIRED"),
    ({}, {"exp": None}, "TOKEN_CLAIM_MISSING"),
    ({}, {"exp": "tomorrow"}, "TOKEN_MALFORMED"),
    ({}, {"exp": True}, "TOKEN_MALFORMED"),
    ({}, {"exp": 1e400}, "TOKEN_MALFORMED"),
    ({}, {"nbf": +3600}, "TOKEN_NOT_YET_VALID"),
    ({}, {"iat": +3600}, "TOKEN_NOT_YET_VALID"),
    ({}, {"nbf": +20}, "OK"),  # within the 30 s leeway
    ({}, {"aud": "someone-else"}, "TOKEN_AUDIENCE_MISMATCH"),
    ({}, {"aud": ["someone-else", AUDIENCE]}, "OK"),
    ({}, {"aud": None}, "TOKEN_AUDIENCE_MISMATCH"),
    ({"required_claims": ["device"]}, {}, "TOKEN_CLAIM_MISSING"),
    ({"required_claims": ["device"]}, {"device": "tv-1"}, "OK"),
    ({"claim_values": {"groups": "entitled"}}, {"groups": ["other", "entitled"]}, "OK"),
    ({"claim_values": {"groups": "entitled"}}, {"groups": ["other"]}, "TOKEN_CLAIM_MISSING"),
    ({"claim_values": {"groups": "entitled"}}, {"groups": "entitled"}, "OK"),
    ({"claim_values": {"groups": ["a", "b"]}}, {"groups": "b"}, "OK"),
    ({"claim_values": {"groups": "entitled"}}, {}, "TOKEN_CLAIM_MISSING"),
    ({"claim_values": {"email_verified": True}}, {"email_verified": True}, "OK"),
    ({"claim_values": {"email_verified": True}}, {"email_verified": 1}, "TOKEN_CLAIM_MISSING"),
    ({"claim_values": {"tier": 3}}, {"tier": "3"}, "TOKEN_CLAIM_MISSING"),
    ({"max_lifetime": "1h"}, {"exp": +7200}, "TOKEN_EXPIRED"),
    ({"max_lifetime": "1h"}, {"exp": +3000}, "OK"),
]


def _relative(clock: FakeClock, changes: dict) -> dict:
    """Whole-number time claims in the cases are offsets from now."""
    now = int(clock.time())
    times = ("exp", "nbf", "iat")
    return {
        name: now + value if name in times and type(value) is int else value
        for name, value in changes.items()
    }


@pytest.mark.parametrize(("settings", "changes", "expected"), CLAIM_CASES)
async def test_claim_checks(settings, changes, expected):
    clock = FakeClock()
    plugin, make = _claims_plugin(clock, **settings)
    assert await reason(plugin, make(**_relative(clock, changes))) == expected


async def test_time_checks_run_in_order_so_an_expired_token_is_expired_whatever_else():
    clock = FakeClock()
    plugin, make = _claims_plugin(clock, required_claims=["device"])
    now = int(clock.time())
    token = make(exp=now - 3600, nbf="soon", aud="someone-else")
    assert await reason(plugin, token) == "TOKEN_EXPIRED"


# -- the verification cache ---------------------------------------------------------------


async def test_a_repeated_token_is_answered_from_the_cache_until_it_expires():
    clock = FakeClock()
    plugin, make = _claims_plugin(clock)
    token = make()
    first = await plugin.verifier.verify(token)
    again = await plugin.verifier.verify(token)
    assert again is first and len(plugin.verifier.cache) == 1
    clock.advance(600 + 29)  # exp passed, still within the 30 s leeway
    assert await plugin.verifier.verify(token) is first
    clock.advance(2)
    assert await reason(plugin, token) == "TOKEN_EXPIRED"
    assert len(plugin.verifier.cache) == 0


async def test_the_cache_is_bounded():
    clock = FakeClock()
    private = rsa_key()
    auth = {"cache_size": 3, "issuers": [issuer(keys=[{"id": "k1", "public_key": pem(private)}])]}
    plugin, _ = build_token_plugin(auth, clock=clock)
    tokens = [sign(claims(clock.time(), jti=str(i)), private) for i in range(5)]
    for token in tokens:
        await plugin.verifier.verify(token)
    assert len(plugin.verifier.cache) == 3


async def test_a_cached_token_is_dropped_when_its_issuers_keys_change():
    clock = FakeClock()
    plugin, make = _claims_plugin(clock)
    token = make()
    principal = await plugin.verifier.verify(token)
    verifier_issuer = plugin.verifier.issuers[ISSUER]
    verifier_issuer.replace_remote_keys([])  # same keys: nothing changes
    assert len(plugin.verifier.cache) == 1
    other = rsa_key("other")
    from plugins.token.keys import prepare

    verifier_issuer.replace_remote_keys(
        [prepare(other.public_key(), kid="k2", label="k2", accepted=["RS256"])]
    )
    assert len(plugin.verifier.cache) == 0
    assert await plugin.verifier.verify(token) == principal


async def test_cache_off_still_verifies():
    clock = FakeClock()
    private = rsa_key()
    auth = {"cache_size": 0, "issuers": [issuer(keys=[{"id": "k1", "public_key": pem(private)}])]}
    plugin, _ = build_token_plugin(auth, clock=clock)
    token = sign(claims(clock.time()), private)
    assert await reason(plugin, token) == await reason(plugin, token) == "OK"
    assert len(plugin.verifier.cache) == 0


async def test_a_token_without_kid_is_never_tried_against_a_whole_key_set():
    clock = FakeClock()
    first, second = rsa_key("k1"), rsa_key("k2")
    one = json.dumps({"keys": [public_jwk(first, "k1")]})
    two = json.dumps({"keys": [public_jwk(first, "k1"), public_jwk(second, "k2")]})
    plugin, _ = build_token_plugin({"issuers": [issuer(keys=[{"jwks": one}])]}, clock=clock)
    assert await reason(plugin, sign(claims(clock.time()), first, kid=None)) == "OK"
    plugin, _ = build_token_plugin({"issuers": [issuer(keys=[{"jwks": two}])]}, clock=clock)
    assert await reason(plugin, sign(claims(clock.time()), second, kid=None)) == (
        "TOKEN_KEY_UNKNOWN"
    )
    assert await reason(plugin, sign(claims(clock.time()), second, kid="k2")) == "OK"


async def test_keys_without_id_serve_tokens_with_or_without_kid():
    clock = FakeClock()
    old, new = SECRET, SECRET[::-1]
    auth = {
        "issuers": [
            issuer(
                algorithms=["HS256"],
                keys=[{"secret": f"hex:{old.hex()}"}, {"secret": f"hex:{new.hex()}"}],
            )
        ]
    }
    plugin, _ = build_token_plugin(auth, clock=clock)
    for key in (old, new):
        for kid in (None, "whatever"):
            assert await reason(plugin, sign(claims(clock.time()), key, "HS256", kid=kid)) == "OK"
    principal = await plugin.verifier.verify(sign(claims(clock.time()), new, "HS256", kid=None))
    assert principal.key_id == "auth.issuers[0].keys[1]"
