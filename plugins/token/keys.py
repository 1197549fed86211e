"""Verification keys, parsed and prepared once, each pinned to the algorithms of its family.

Key material comes from configuration (a secret, a PEM public key, an X.509
certificate, a JWK or a JWK set) or from a remote key set. Whatever the
source, a key ends up as a :class:`VerificationKey` holding, per algorithm it
may verify, the key object PyJWT's algorithm implementation takes: parsing
happens here, never per request.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec, ed448, ed25519, rsa
from cryptography.hazmat.primitives.serialization import (
    Encoding,
    PublicFormat,
    load_pem_public_key,
)
from jwt.algorithms import (
    ECAlgorithm,
    HMACAlgorithm,
    OKPAlgorithm,
    RSAAlgorithm,
    get_default_algorithms,
)
from jwt.exceptions import InvalidKeyError

from plugins.token.config import (
    HMAC_ALGORITHMS,
    OKP_ALGORITHMS,
    RSA_ALGORITHMS,
    SUPPORTED_ALGORITHMS,
    KeyConfig,
)

ALGORITHMS = get_default_algorithms()
MIN_RSA_BITS = 2048
_HMAC_MIN_BYTES = {"HS256": 32, "HS384": 48, "HS512": 64}
_EC_CURVE_ALGORITHM = {"secp256r1": "ES256", "secp384r1": "ES384", "secp521r1": "ES512"}
#: The members of each JWK type that describe its public part; private ones are dropped.
_PUBLIC_MEMBERS = {
    "RSA": ("kty", "n", "e"),
    "EC": ("kty", "crv", "x", "y"),
    "OKP": ("kty", "crv", "x"),
    "oct": ("kty", "k"),
}
_FROM_JWK = {
    "RSA": RSAAlgorithm.from_jwk,
    "EC": ECAlgorithm.from_jwk,
    "OKP": OKPAlgorithm.from_jwk,
    "oct": HMACAlgorithm.from_jwk,
}


class UnusableKey(ValueError):
    """A well-formed key that is not meant for verifying this issuer's tokens (an
    encryption key, or one whose algorithm the issuer does not accept): skipped, not an error."""


@dataclass(frozen=True, slots=True)
class VerificationKey:
    """A key ready to verify signatures with exactly the algorithms of its family.

    :ivar id: the ``kid`` it answers to (None: any ``kid``, or none).
    :ivar label: how the principal and the logs name it (``kid``, or where it was configured).
    :ivar family: ``HMAC``, ``RSA``, ``EC`` or ``OKP``.
    :ivar prepared: per algorithm it may verify, the key object prepared once for PyJWT.
    :ivar fingerprint: a digest of the key material, to tell when a key set changed.
    """

    id: str | None
    label: str
    family: str
    prepared: Mapping[str, Any]
    fingerprint: str

    @property
    def algorithms(self) -> frozenset[str]:
        """The algorithms this key may verify."""
        return frozenset(self.prepared)

    def verify(self, alg: str, signing_input: bytes, signature: bytes) -> bool:
        """True when ``signature`` over ``signing_input`` verifies with this key under ``alg``."""
        key = self.prepared.get(alg)
        return key is not None and ALGORITHMS[alg].verify(signing_input, key, signature)


def _family(key: Any) -> tuple[str, frozenset[str]]:
    """The family of a public key object and the algorithms that family allows."""
    if isinstance(key, rsa.RSAPublicKey):
        if key.key_size < MIN_RSA_BITS:
            raise ValueError(
                f"RSA keys must have at least {MIN_RSA_BITS} bits (this one has {key.key_size})"
            )
        return "RSA", RSA_ALGORITHMS
    if isinstance(key, ec.EllipticCurvePublicKey):
        alg = _EC_CURVE_ALGORITHM.get(key.curve.name)
        if alg is None:
            raise ValueError(f"EC curve {key.curve.name} is not supported (P-256, P-384, P-521)")
        return "EC", frozenset({alg})
    if isinstance(key, ed25519.Ed25519PublicKey | ed448.Ed448PublicKey):
        return "OKP", OKP_ALGORITHMS
    raise ValueError(f"unsupported public key type {type(key).__name__}")


def _fingerprint(material: Any) -> str:
    if isinstance(material, bytes):
        return "hmac:" + hashlib.sha256(b"license-proxy hmac key\0" + material).hexdigest()
    der = material.public_bytes(Encoding.DER, PublicFormat.SubjectPublicKeyInfo)
    return hashlib.sha256(der).hexdigest()


def _check_secret(secret: bytes, algorithms: Iterable[str], name: str) -> None:
    for alg in algorithms:
        if len(secret) < _HMAC_MIN_BYTES[alg]:
            raise ValueError(
                f"{name} is {len(secret)} bytes; {alg} needs at least {_HMAC_MIN_BYTES[alg]}"
            )


def prepare(
    material: Any,
    *,
    kid: str | None,
    label: str,
    accepted: Iterable[str],
    pinned: str | None = None,
    material_name: str = "the secret",
) -> VerificationKey:
    """Pin ``material`` (HMAC bytes or a public key object) to the algorithms of its family
    that the issuer accepts (only ``pinned`` when given); ValueError says why it can't be used.
    """
    if isinstance(material, bytes):
        family, allowed = "HMAC", HMAC_ALGORITHMS
    else:
        family, allowed = _family(material)
    if pinned is not None:
        if pinned not in allowed:
            raise ValueError(f"algorithm {pinned} does not fit this {family} key")
        allowed = frozenset({pinned})
    usable = [alg for alg in accepted if alg in allowed]
    if not usable:
        raise UnusableKey(
            f"this {family} key can verify none of the issuer's algorithms ({', '.join(accepted)})"
        )
    if family == "HMAC":
        _check_secret(material, usable, material_name)
    try:
        prepared = {alg: ALGORITHMS[alg].prepare_key(material) for alg in usable}
    except InvalidKeyError as exc:
        raise ValueError(str(exc)) from None
    return VerificationKey(kid, kid or label, family, prepared, _fingerprint(material))


def public_key_from_pem(data: bytes) -> Any:
    """The public key in a PEM block; ValueError (naming the PEM type, never its content)."""
    if b"CERTIFICATE-----" in data:
        raise ValueError("this is a certificate: give it as certificate, not public_key")
    if b"PRIVATE KEY-----" in data:
        raise ValueError("this is a private key: give the public key")
    try:
        return load_pem_public_key(data)
    except (ValueError, TypeError):
        raise ValueError("not a PEM public key") from None


def certificate_public_key(data: bytes, now: float | None = None) -> tuple[Any, list[str]]:
    """The public key of a PEM or DER X.509 certificate, and warnings (an expired certificate)."""
    try:
        if data.lstrip().startswith(b"-----BEGIN"):
            cert = x509.load_pem_x509_certificate(data)
        else:
            cert = x509.load_der_x509_certificate(data)
    except ValueError:
        raise ValueError("not an X.509 certificate (PEM or DER)") from None
    warnings = []
    if now is not None:
        expiry = cert.not_valid_after_utc
        if expiry.timestamp() < now:
            warnings.append(
                f"the certificate expired on {expiry:%Y-%m-%d}; its key is still used for tokens"
            )
    return cert.public_key(), warnings


def jwk_material(jwk: Mapping[str, Any]) -> Any:
    """The public key (or HMAC bytes) a JWK describes; private members are ignored."""
    kty = jwk.get("kty")
    members = _PUBLIC_MEMBERS.get(kty) if isinstance(kty, str) else None
    if members is None or not isinstance(kty, str):
        raise ValueError(f"unsupported JWK key type {kty!r}")
    public = {name: jwk[name] for name in members if name in jwk}
    try:
        return _FROM_JWK[kty](public)
    except (InvalidKeyError, ValueError, KeyError, TypeError) as exc:
        detail = str(exc) or type(exc).__name__
        raise ValueError(f"invalid {kty} JWK: {detail}") from None


def key_from_jwk(
    jwk: Any,
    *,
    accepted: Iterable[str],
    label: str,
    kid: str | None = None,
    pinned: str | None = None,
    allow_secret: bool = True,
) -> VerificationKey:
    """A verification key from one JWK; :class:`UnusableKey` for keys not meant for signatures
    (``use`` other than ``sig``, ``key_ops`` without ``verify``, an ``alg`` we don't verify with),
    ValueError for broken ones."""
    if not isinstance(jwk, Mapping):
        raise ValueError("a JWK is a JSON object")
    use = jwk.get("use")
    if use is not None and use != "sig":
        raise UnusableKey(f"the key's use is {use!r}, not 'sig'")
    ops = jwk.get("key_ops")
    if ops is not None and (not isinstance(ops, list) or "verify" not in ops):
        raise UnusableKey("the key's key_ops do not include 'verify'")
    alg = jwk.get("alg")
    if alg is not None and alg not in SUPPORTED_ALGORITHMS:
        raise UnusableKey(f"the key's algorithm {alg!r} is not a signature algorithm we verify")
    if pinned is not None and alg is not None and pinned != alg:
        raise ValueError(f"the key says alg {alg!r} but the configuration pins {pinned!r}")
    if jwk.get("kty") == "oct" and not allow_secret:
        raise ValueError("a published key set must not hold symmetric (oct) keys")
    own_kid = jwk.get("kid")
    if own_kid is not None and not isinstance(own_kid, str):
        raise ValueError("the key's kid is not a string")
    return prepare(
        jwk_material(jwk),
        kid=kid if kid is not None else own_kid,
        label=label,
        accepted=accepted,
        pinned=pinned or alg,
        material_name="the JWK's k",
    )


def jwks_entries(document: Any) -> list[Any]:
    """The ``keys`` array of a JWK set document (ValueError when it is not one)."""
    if not isinstance(document, Mapping) or not isinstance(document.get("keys"), list):
        raise ValueError('not a JWK set (a JSON object with a "keys" array)')
    return list(document["keys"])


def _json(data: bytes, what: str) -> Any:
    try:
        return json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError):
        raise ValueError(f"not a JSON {what}") from None


def load_configured_key(
    config: KeyConfig, accepted: list[str], label: str, *, now: float | None = None
) -> tuple[list[VerificationKey], list[str]]:
    """Parse one ``[[auth.issuers.keys]]`` entry: its keys and any warnings.

    ValueError says why the entry can't be used (at start, with its key path).
    """
    pinned = config.algorithm
    if config.secret is not None:
        key = prepare(
            config.secret.value,
            kid=config.id,
            label=label,
            accepted=accepted,
            pinned=pinned,
            material_name=f"secret {config.secret.reference}",
        )
        return [key], []
    if config.public_key is not None:
        material = public_key_from_pem(config.public_key.value)
        return [prepare(material, kid=config.id, label=label, accepted=accepted, pinned=pinned)], []
    if config.certificate is not None:
        material, warnings = certificate_public_key(config.certificate.value, now)
        key = prepare(material, kid=config.id, label=label, accepted=accepted, pinned=pinned)
        return [key], warnings
    if config.jwk is not None:
        jwk = _json(config.jwk.value, "Web Key")
        key = key_from_jwk(jwk, accepted=accepted, label=label, kid=config.id, pinned=pinned)
        return [key], []
    assert config.jwks is not None
    keys, warnings = [], []
    for index, jwk in enumerate(jwks_entries(_json(config.jwks.value, "Web Key Set"))):
        try:
            keys.append(
                key_from_jwk(jwk, accepted=accepted, label=f"{label}/{index}", pinned=pinned)
            )
        except UnusableKey as exc:
            warnings.append(f"key {index} of the set is skipped: {exc}")
        except ValueError as exc:
            raise ValueError(f"key {index} of the set: {exc}") from None
    if not keys:
        raise ValueError("the key set holds no key usable for the issuer's algorithms")
    return keys, warnings


__all__ = [
    "ALGORITHMS",
    "UnusableKey",
    "VerificationKey",
    "certificate_public_key",
    "jwks_entries",
    "key_from_jwk",
    "load_configured_key",
    "prepare",
    "public_key_from_pem",
]
