"""Published JWS examples verify as signatures: RFC 7515 Appendix A and RFC 8037 A.4.

Their ``exp`` (2011) has passed, so a good signature answers TOKEN_EXPIRED, and the same
token with one bit of its decoded signature flipped answers TOKEN_SIGNATURE_INVALID. The
RFC 8037 payload is not a claim set: TOKEN_MALFORMED, after the signature verified.
"""

from __future__ import annotations

import json

import pytest

from tests.conftest import DATA
from tests.token_support import build_token_plugin, flip_signature_bit, reason

JOSE = DATA / "jose"


def vector(name: str) -> str:
    return (JOSE / f"{name}.jws").read_text().strip()


def jwk_text(name: str) -> str:
    doc = json.loads((JOSE / f"{name}.jwk.json").read_text())
    return json.dumps(doc.get("public_jwk") or doc["private_or_secret_jwk"])


def joe(name: str, alg: str) -> dict:
    """An ``[auth]`` section with issuer ``joe`` and the example's key (given as a JWK)."""
    return {
        "issuers": [
            {
                "issuer": "joe",
                "audiences": ["anyone"],
                "algorithms": [alg],
                "keys": [{"jwk": jwk_text(name)}],
            }
        ]
    }


@pytest.mark.parametrize(
    ("name", "alg"), [("A1_HS256", "HS256"), ("A2_RS256", "RS256"), ("A3_ES256", "ES256")]
)
async def test_rfc7515_examples_verify_and_are_expired(name, alg):
    plugin, _ = build_token_plugin(joe(name, alg))
    token = vector(name)
    assert await reason(plugin, token) == "TOKEN_EXPIRED"
    for bit in (0, 77, 255):
        assert await reason(plugin, flip_signature_bit(token, bit)) == "TOKEN_SIGNATURE_INVALID"


async def test_rfc7515_es512_example_payload_is_not_a_claim_set():
    # A.4 signs the bare string "Payload": the signature verifies, the shape does not.
    plugin, _ = build_token_plugin(joe("A4_ES512", "ES512"))
    token = vector("A4_ES512")
    assert await reason(plugin, token) == "TOKEN_MALFORMED"
    assert await reason(plugin, flip_signature_bit(token, 9)) == "TOKEN_SIGNATURE_INVALID"


async def test_rfc7515_unsecured_example_is_refused():
    plugin, _ = build_token_plugin(joe("A1_HS256", "HS256"))
    assert await reason(plugin, vector("A5_none_unsecured")) == "TOKEN_ALGORITHM_REJECTED"


async def test_rfc8037_ed25519_example_verifies_but_is_not_a_claim_set():
    jwk = json.loads((JOSE / "A4_Ed25519.jwk.json").read_text())["public_jwk"]
    auth = {
        "issuers": [
            {
                "issuer": "ed25519-example",
                "audiences": ["anyone"],
                "algorithms": ["EdDSA"],
                "keys": [{"jwk": json.dumps(jwk)}],
            }
        ]
    }
    plugin, _ = build_token_plugin(auth)
    token = vector("A4_Ed25519")
    assert await reason(plugin, token) == "TOKEN_MALFORMED"
    for bit in (0, 200, 511):
        assert await reason(plugin, flip_signature_bit(token, bit)) == "TOKEN_SIGNATURE_INVALID"


async def test_an_example_key_of_another_family_never_verifies_it():
    # The RS256 example presented to an issuer whose only key is the EC one of A.3.
    auth = joe("A3_ES256", "ES256")
    auth["issuers"][0]["algorithms"] = ["ES256", "RS256"]
    plugin, _ = build_token_plugin(auth)
    assert await reason(plugin, vector("A2_RS256")) == "TOKEN_ALGORITHM_REJECTED"
