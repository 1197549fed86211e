"""Verification keys, parsed and prepared once at start, each pinned to its algorithm family."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from cryptography.hazmat.primitives.asymmetric import ec, ed448, ed25519, rsa
from cryptography.hazmat.primitives.serialization import load_pem_public_key
from jwt.algorithms import get_default_algorithms

from plugins.token.config import (
    HMAC_ALGORITHMS,
    OKP_ALGORITHMS,
    RSA_ALGORITHMS,
    KeyConfig,
)

_ALGORITHMS = get_default_algorithms()
_HMAC_MIN_BYTES = {"HS256": 32, "HS384": 48, "HS512": 64}
_EC_CURVE_ALGORITHM = {"secp256r1": "ES256", "secp384r1": "ES384", "secp521r1": "ES512"}


@dataclass(frozen=True, slots=True)
class VerificationKey:
    """A key ready to verify signatures with exactly the algorithms of its family.

    :ivar id: the ``kid`` it answers to (None: tokens without ``kid``).
    :ivar label: how the principal names it (``kid``, or the key's position).
    :ivar prepared: the key object per algorithm, prepared once for PyJWT.
    """

    id: str | None
    label: str
    family: str
    prepared: dict[str, Any]

    @property
    def algorithms(self) -> frozenset[str]:
        """The algorithms this key may verify."""
        return frozenset(self.prepared)


def _family_algorithms(key: Any) -> tuple[str, frozenset[str]]:
    if isinstance(key, rsa.RSAPublicKey):
        if key.key_size < 2048:
            raise ValueError(f"RSA keys must have at least 2048 bits (this one has {key.key_size})")
        return "RSA", RSA_ALGORITHMS
    if isinstance(key, ec.EllipticCurvePublicKey):
        alg = _EC_CURVE_ALGORITHM.get(key.curve.name)
        if alg is None:
            raise ValueError(f"EC curve {key.curve.name} is not supported (P-256, P-384, P-521)")
        return "EC", frozenset({alg})
    if isinstance(key, ed25519.Ed25519PublicKey | ed448.Ed448PublicKey):
        return "OKP", OKP_ALGORITHMS
    raise ValueError(f"unsupported public key type {type(key).__name__}")


def load_key(config: KeyConfig, algorithms: list[str], label: str) -> VerificationKey:
    """Parse one configured key for an issuer that accepts ``algorithms``; ValueError says why not."""
    if config.secret is not None:
        family, allowed = "HMAC", HMAC_ALGORITHMS
        material: Any = config.secret.value
        usable = [a for a in algorithms if a in allowed]
        for alg in usable:
            if len(material) < _HMAC_MIN_BYTES[alg]:
                raise ValueError(
                    f"secret {config.secret.reference} is {len(material)} bytes; "
                    f"{alg} needs at least {_HMAC_MIN_BYTES[alg]}"
                )
    else:
        assert config.public_key is not None
        try:
            material = load_pem_public_key(config.public_key.value)
        except ValueError:
            raise ValueError(f"{config.public_key.reference} is not a PEM public key") from None
        family, allowed = _family_algorithms(material)
        usable = [a for a in algorithms if a in allowed]
    if not usable:
        raise ValueError(
            f"this {family} key can verify none of the issuer's algorithms ({', '.join(algorithms)})"
        )
    prepared = {alg: _ALGORITHMS[alg].prepare_key(material) for alg in usable}
    return VerificationKey(config.id, config.id or label, family, prepared)


__all__ = ["VerificationKey", "load_key"]
