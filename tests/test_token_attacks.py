"""Forged, tampered and malformed tokens against a running proxy, each with its reason code.

The proxy serves two issuers: the STS under attack, whose keys come from a real JWKS
endpoint on loopback (RSA ``k1``, EC P-256 ``ec1``) plus a shared secret ``hs1``, and a
second, HS256 issuer. An attacker runs a key server of its own; header parameters that
point at it (``jku``, ``x5u``) or carry its key (``jwk``, ``x5c``) must never choose a key,
so it must never be asked for anything.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import grpc
import pytest
import pytest_asyncio
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from cryptography.x509.oid import NameOID
from google.rpc import error_details_pb2, status_pb2
from jwt.algorithms import get_default_algorithms

from licenseproxy.v1 import license_proxy_pb2 as pb
from proxy.encoding import b64url_decode, b64url_encode
from proxy.testing import FakeClock, proxy_config
from tests.conftest import clearkey_request
from tests.token_support import (
    AUDIENCE,
    ISSUER,
    KID,
    KeyServer,
    acquire,
    claims,
    ec_key,
    flip_signature_bit,
    issuer,
    public_jwk,
    raw_token,
    rsa_key,
    sign,
)

OTHER_ISSUER = "https://other-sts.example.test/"
HS_SECRET = hashlib.sha256(b"attack suite shared secret").digest()
OTHER_SECRET = hashlib.sha512(b"the other issuer's secret").digest()


@dataclass
class World:
    """What the cases sign with, and where the attacker's server is."""

    clock: FakeClock
    attacker_server: KeyServer

    def body(self, **changes: Any) -> dict[str, Any]:
        return claims(self.clock.time(), **{"groups": ["viewers", "entitled"], **changes})

    def good(self, **changes: Any) -> str:
        return sign(self.body(**changes), rsa_key("k1"), "RS256", kid="k1")

    def rs256(self, header: dict[str, Any], payload: bytes, key: Any = None) -> str:
        """A hand-built RS256 token (any header, any payload bytes)."""
        header_b64 = b64url_encode(json.dumps(header).encode())
        signing_input = f"{header_b64}.{b64url_encode(payload)}"
        signature = get_default_algorithms()["RS256"].sign(
            signing_input.encode(), key or rsa_key("k1")
        )
        return f"{signing_input}.{b64url_encode(signature)}"

    def payload(self, **changes: Any) -> bytes:
        return json.dumps(self.body(**changes)).encode()


def attacker_certificate() -> str:
    key = rsa_key("attacker")
    now = datetime.now(UTC)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "sts.example.test")])
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(1)
        .not_valid_before(now - timedelta(days=1))
        .not_valid_after(now + timedelta(days=30))
        .sign(key, hashes.SHA256())
    )
    return b64url_encode(cert.public_bytes(Encoding.DER))


def tamper_payload(token: str, **changes: Any) -> str:
    header, payload, signature = token.split(".")
    body = json.loads(b64url_decode(payload))
    body.update(changes)
    return ".".join([header, b64url_encode(json.dumps(body).encode()), signature])


def hs256_with_public_key_as_secret(world: World, kid: str | None) -> str:
    pem = rsa_key("k1").public_key().public_bytes(Encoding.PEM, PublicFormat.SubjectPublicKeyInfo)
    header = {"alg": "HS256", "typ": "JWT", **({"kid": kid} if kid else {})}
    signing_input = f"{b64url_encode(json.dumps(header).encode())}.{b64url_encode(world.payload())}"
    mac = hmac.new(pem, signing_input.encode(), hashlib.sha256).digest()
    return f"{signing_input}.{b64url_encode(mac)}"


def attacker_signed(world: World, kid: str, **header: Any) -> str:
    return sign(world.body(), rsa_key("attacker"), "RS256", kid=kid, headers=header)


def non_canonical_signature(world: World) -> str:
    # The last base64url character of a 256-byte signature carries 4 unused bits;
    # setting one keeps the bytes the same but the text is no longer canonical.
    token = world.good()
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
    last = token[-1]
    return token[:-1] + alphabet[alphabet.index(last) | 1]


def deeply_nested_header(world: World) -> str:
    header = b"[" * 2000 + b"]" * 2000
    return f"{b64url_encode(header)}.{b64url_encode(world.payload())}.c2ln"


CASES: dict[str, tuple[Callable[[World], str], str]] = {
    "alg none": (
        lambda w: raw_token({"alg": "none", "kid": "k1"}, w.payload()),
        "TOKEN_ALGORITHM_REJECTED",
    ),
    "alg None (other spelling)": (
        lambda w: raw_token({"alg": "None"}, w.payload()),
        "TOKEN_ALGORITHM_REJECTED",
    ),
    "alg missing": (lambda w: raw_token({"typ": "JWT"}, w.payload()), "TOKEN_MALFORMED"),
    "HS256 signed with the RS256 public key, its kid": (
        lambda w: hs256_with_public_key_as_secret(w, "k1"),
        "TOKEN_ALGORITHM_REJECTED",
    ),
    "HS256 signed with the RS256 public key, no kid": (
        lambda w: hs256_with_public_key_as_secret(w, None),
        "TOKEN_SIGNATURE_INVALID",
    ),
    "tampered payload": (
        lambda w: tamper_payload(w.good(), sub="admin"),
        "TOKEN_SIGNATURE_INVALID",
    ),
    "tampered signature": (lambda w: flip_signature_bit(w.good(), 100), "TOKEN_SIGNATURE_INVALID"),
    # 342 base64url characters less 42 leave 225 whole bytes: canonical, but too short.
    "signature cut short": (lambda w: w.good()[:-42], "TOKEN_SIGNATURE_INVALID"),
    "expired": (lambda w: w.good(exp=int(w.clock.time()) - 3600), "TOKEN_EXPIRED"),
    "expired and wrong audience and no sub": (
        lambda w: w.good(exp=int(w.clock.time()) - 3600, aud="x", sub=None),
        "TOKEN_EXPIRED",
    ),
    "not yet valid": (lambda w: w.good(nbf=int(w.clock.time()) + 3600), "TOKEN_NOT_YET_VALID"),
    "issued in the future beyond leeway": (
        lambda w: w.good(iat=int(w.clock.time()) + 120),
        "TOKEN_NOT_YET_VALID",
    ),
    "exp is NaN": (
        lambda w: w.rs256(
            {"alg": "RS256", "kid": "k1"}, w.payload().replace(b'"exp": ', b'"exp": NaN, "x": ')
        ),
        "TOKEN_MALFORMED",
    ),
    "wrong issuer": (lambda w: w.good(iss="https://evil.example.test/"), "TOKEN_ISSUER_MISMATCH"),
    "no issuer, two configured": (lambda w: w.good(iss=None), "TOKEN_ISSUER_MISMATCH"),
    "issuer is not a string": (
        lambda w: w.rs256({"alg": "RS256", "kid": "k1"}, w.payload(iss=[ISSUER])),
        "TOKEN_ISSUER_MISMATCH",
    ),
    "wrong audience": (lambda w: w.good(aud="someone-else"), "TOKEN_AUDIENCE_MISMATCH"),
    "missing required claim": (lambda w: w.good(sub=None), "TOKEN_CLAIM_MISSING"),
    "wrong claim value": (lambda w: w.good(groups=["viewers"]), "TOKEN_CLAIM_MISSING"),
    "unknown kid": (lambda w: attacker_signed(w, "k-unknown"), "TOKEN_KEY_UNKNOWN"),
    "kid is not a string": (
        lambda w: w.rs256({"alg": "RS256", "kid": 7}, w.payload()),
        "TOKEN_MALFORMED",
    ),
    "jku at the attacker's key set": (
        lambda w: attacker_signed(w, "attacker-1", jku=w.attacker_server.jwks_uri),
        "TOKEN_KEY_UNKNOWN",
    ),
    "jku at the attacker's key set, victim kid": (
        lambda w: attacker_signed(w, "k1", jku=w.attacker_server.jwks_uri),
        "TOKEN_SIGNATURE_INVALID",
    ),
    "x5u at the attacker's certificate": (
        lambda w: attacker_signed(w, "attacker-1", x5u=w.attacker_server.base + "/cert.pem"),
        "TOKEN_KEY_UNKNOWN",
    ),
    "jwk header with the attacker's key": (
        lambda w: attacker_signed(w, "attacker-1", jwk=public_jwk(rsa_key("attacker"))),
        "TOKEN_KEY_UNKNOWN",
    ),
    "jwk header with the attacker's key, victim kid": (
        lambda w: attacker_signed(w, "k1", jwk=public_jwk(rsa_key("attacker"), "k1")),
        "TOKEN_SIGNATURE_INVALID",
    ),
    "x5c header with the attacker's certificate, victim kid": (
        lambda w: attacker_signed(w, "k1", x5c=[attacker_certificate()]),
        "TOKEN_SIGNATURE_INVALID",
    ),
    "over the size limit": (lambda w: w.good(padding="x" * 9000), "TOKEN_MALFORMED"),
    "non-UTF-8 header": (
        lambda w: raw_token(b'{"alg":"HS256","x":"\xff\xfe"}', w.payload(), HS_SECRET),
        "TOKEN_MALFORMED",
    ),
    "UTF-16 header": (
        lambda w: raw_token('{"alg":"RS256"}'.encode("utf-16"), w.payload()),
        "TOKEN_MALFORMED",
    ),
    "non-UTF-8 payload": (
        lambda w: w.rs256({"alg": "RS256", "kid": "k1"}, b'{"iss":"\xff"}'),
        "TOKEN_MALFORMED",
    ),
    "non-JSON header": (lambda w: raw_token(b"alg=RS256", w.payload()), "TOKEN_MALFORMED"),
    "header is a JSON string": (lambda w: raw_token(b'"alg"', w.payload()), "TOKEN_MALFORMED"),
    "non-JSON payload": (
        lambda w: w.rs256({"alg": "RS256", "kid": "k1"}, b"not json"),
        "TOKEN_MALFORMED",
    ),
    "payload is a JSON array": (
        lambda w: w.rs256({"alg": "RS256", "kid": "k1"}, b"[1, 2]"),
        "TOKEN_MALFORMED",
    ),
    "deeply nested header": (deeply_nested_header, "TOKEN_MALFORMED"),
    "two segments": (lambda w: w.good().rpartition(".")[0], "TOKEN_MALFORMED"),
    "four segments": (lambda w: w.good() + ".e30", "TOKEN_MALFORMED"),
    "characters outside base64url": (lambda w: w.good()[:-4] + "!!!!", "TOKEN_MALFORMED"),
    "padded base64": (lambda w: w.good() + "==", "TOKEN_MALFORMED"),
    "non-canonical signature encoding": (non_canonical_signature, "TOKEN_MALFORMED"),
    "crit header": (
        lambda w: w.rs256({"alg": "RS256", "kid": "k1", "crit": ["exp"], "exp": 1}, w.payload()),
        "TOKEN_MALFORMED",
    ),
    "b64 false (RFC 7797)": (
        lambda w: w.rs256({"alg": "RS256", "kid": "k1", "b64": False}, w.payload()),
        "TOKEN_MALFORMED",
    ),
    "EC key asked to verify ES384": (
        lambda w: sign(w.body(), ec_key("p384", "P-384"), "ES384", kid="ec1"),
        "TOKEN_ALGORITHM_REJECTED",
    ),
    "ES256 header over a P-384 signature": (
        lambda w: raw_es256_over_p384(w),
        "TOKEN_SIGNATURE_INVALID",
    ),
    "algorithm the issuer does not allow": (
        lambda w: sign(w.body(), rsa_key("k1"), "PS256", kid="k1"),
        "TOKEN_ALGORITHM_REJECTED",
    ),
    "other issuer's secret for this issuer": (
        lambda w: sign(w.body(), OTHER_SECRET, "HS256", kid=None),
        "TOKEN_SIGNATURE_INVALID",
    ),
    "sound token (control)": (lambda w: w.good(), "OK"),
    "ES256 token (control)": (lambda w: sign(w.body(), ec_key("ec1"), "ES256", kid="ec1"), "OK"),
    "shared secret token (control)": (
        lambda w: sign(w.body(), HS_SECRET, "HS256", kid="hs1"),
        "OK",
    ),
}


def raw_es256_over_p384(world: World) -> str:
    """A token whose header says ES256 for the P-256 key but whose signature is P-384 sized."""
    p384_token = sign(world.body(), ec_key("p384", "P-384"), "ES384", kid="ec1")
    header = b64url_encode(json.dumps({"alg": "ES256", "kid": "ec1"}).encode())
    _, payload, signature = p384_token.split(".")
    return f"{header}.{payload}.{signature}"


@pytest_asyncio.fixture
async def world(fake_clock) -> AsyncIterator[World]:
    attacker = await KeyServer(keys=[public_jwk(rsa_key("attacker"), "attacker-1")]).start()
    try:
        yield World(fake_clock, attacker)
    finally:
        await attacker.stop()


@pytest_asyncio.fixture
async def victim_keys() -> AsyncIterator[KeyServer]:
    server = await KeyServer(
        keys=[public_jwk(rsa_key("k1"), "k1"), public_jwk(ec_key("ec1"), "ec1")]
    ).start()
    try:
        yield server
    finally:
        await server.stop()


def attack_config(victim: KeyServer) -> dict[str, Any]:
    return proxy_config(
        {
            "auth": {
                "issuers": [
                    issuer(
                        jwks_uri=victim.jwks_uri,
                        algorithms=["RS256", "HS256", "ES256", "ES384"],
                        keys=[{"id": "hs1", "secret": f"hex:{HS_SECRET.hex()}"}],
                        required_claims=["sub"],
                        claim_values={"groups": "entitled"},
                        leeway="30s",
                    ),
                    {
                        "issuer": OTHER_ISSUER,
                        "audiences": [AUDIENCE],
                        "algorithms": ["HS256"],
                        "keys": [{"secret": f"hex:{OTHER_SECRET.hex()}"}],
                    },
                ]
            }
        }
    )


@pytest.mark.parametrize("case", list(CASES))
async def test_attack(case, proxy_factory, http, world, victim_keys, fake_clock):
    make, expected = CASES[case]
    proxy = await proxy_factory(attack_config(victim_keys), clock=fake_clock)
    token = make(world)
    assert await acquire(proxy, http, token) == expected
    # Header parameters never choose a key: the attacker's server heard nothing.
    assert world.attacker_server.requests == 0


@pytest.mark.parametrize(
    "case", ["alg none", "expired", "unknown kid", "jku at the attacker's key set", "two segments"]
)
async def test_attack_over_grpc(case, proxy_factory, world, victim_keys, fake_clock):
    make, expected = CASES[case]
    proxy = await proxy_factory(attack_config(victim_keys), clock=fake_clock)
    request = pb.AcquireLicenseRequest(
        drm_system=pb.DRM_SYSTEM_CLEARKEY, challenge=clearkey_request(KID), token=make(world)
    )
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await proxy.stub().AcquireLicense(request)
    assert raised.value.code() == grpc.StatusCode.UNAUTHENTICATED
    details = dict(raised.value.trailing_metadata() or ())["grpc-status-details-bin"]
    info = error_details_pb2.ErrorInfo()
    assert status_pb2.Status.FromString(details).details[0].Unpack(info)
    assert info.reason == expected


async def test_no_answer_echoes_the_token_or_a_key(
    proxy_factory, http, world, victim_keys, fake_clock
):
    proxy = await proxy_factory(attack_config(victim_keys), clock=fake_clock)
    for case in ("tampered payload", "wrong claim value", "non-UTF-8 payload", "exp is NaN"):
        token = CASES[case][0](world)
        async with http.post(
            f"{proxy.http_url}/v1/licenses/clearkey",
            data=clearkey_request(KID),
            headers={"Authorization": f"Bearer {token}"},
        ) as response:
            text = await response.text()
        for part in token.split("."):
            assert part not in text
        assert HS_SECRET.hex() not in text
