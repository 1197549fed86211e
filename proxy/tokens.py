"""Minting tokens: ``license-proxy token`` and the test fixtures sign with this."""

from __future__ import annotations

import secrets
import time
from typing import Any

import jwt

from proxy.builder import embedded_default
from proxy.secrets import resolve_secret

DEFAULT_TTL = 3600


def development_issuer() -> dict[str, Any]:
    """The embedded default's development issuer section (issuer, audiences, keys)."""
    for issuer in embedded_default()["auth"]["issuers"]:
        if issuer.get("development"):
            return issuer
    raise LookupError("the embedded default has no development issuer")


def development_key() -> tuple[str, bytes]:
    """The development HS256 key: its ``kid`` and its bytes."""
    key = development_issuer()["keys"][0]
    return key["id"], resolve_secret(key["secret"]).value


def mint(
    claims: dict[str, Any],
    key: Any,
    *,
    algorithm: str = "HS256",
    kid: str | None = None,
    headers: dict[str, Any] | None = None,
) -> str:
    """Sign ``claims`` as a compact JWS with ``key`` (bytes or a private key object)."""
    header = dict(headers or {})
    if kid is not None:
        header["kid"] = kid
    return jwt.encode(claims, key, algorithm=algorithm, headers=header or None)


def default_algorithm(key: Any) -> str:
    """The algorithm a key signs with when none is named: HS256 for a secret, RS256, ES256
    (ES384, ES512 by curve) or EdDSA for a private key."""
    from cryptography.hazmat.primitives.asymmetric import ec, ed448, ed25519, rsa

    if isinstance(key, rsa.RSAPrivateKey):
        return "RS256"
    if isinstance(key, ec.EllipticCurvePrivateKey):
        return {"secp384r1": "ES384", "secp521r1": "ES512"}.get(key.curve.name, "ES256")
    if isinstance(key, ed25519.Ed25519PrivateKey | ed448.Ed448PrivateKey):
        return "EdDSA"
    return "HS256"


def development_token(
    claims: dict[str, Any] | None = None,
    *,
    ttl: int = DEFAULT_TTL,
    now: float | None = None,
    kid: str | None = None,
) -> str:
    """A token the embedded default accepts: its issuer, audience and key, ``ttl`` seconds long
    (``claims`` and ``kid`` override what the embedded default expects)."""
    issuer = development_issuer()
    dev_kid, key = development_key()
    kid = kid or dev_kid
    issued = int(now if now is not None else time.time())
    body: dict[str, Any] = {
        "iss": issuer["issuer"],
        "aud": issuer["audiences"][0],
        "sub": "dev-user",
        "iat": issued,
        "exp": issued + ttl,
        "jti": secrets.token_hex(8),
    }
    body.update(claims or {})
    return mint(body, key, algorithm="HS256", kid=kid)
