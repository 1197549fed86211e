"""Compact JWS signed with a key prepared once: the vendor tokens adapters mint per request.

:class:`JwsSigner` does once, where the adapter is built, what ``jwt.encode`` does on
every call: it prepares the key (HMAC key bytes checked, a PEM private key parsed into
a key object) and serializes and base64url-encodes the header. Per request only the
claims are serialized (orjson) and signed, with PyJWT's own algorithm objects: its HMAC
costs what the standard library's one-shot ``hmac.digest`` does. The token carries the
header bytes ``jwt.encode(claims, key, algorithm, headers=...)`` writes (keys sorted,
``typ`` = ``JWT``), the same claims and a signature any JWS library verifies;
bench/RESULTS.md has the costs side by side.
"""

from __future__ import annotations

import base64
import json
import warnings
from collections.abc import Mapping
from typing import Any

import orjson
from cryptography.hazmat.primitives.asymmetric import ec, ed448, ed25519, rsa
from jwt.algorithms import Algorithm, HMACAlgorithm, get_default_algorithms
from jwt.exceptions import InvalidKeyError

from proxy.adapters.wire import ORJSON_OPTIONS

#: The algorithms a :class:`JwsSigner` signs with (``none`` is never one of them).
ALGORITHMS = frozenset(
    {
        *("HS256", "HS384", "HS512"),
        *("RS256", "RS384", "RS512", "PS256", "PS384", "PS512"),
        *("ES256", "ES384", "ES512", "EdDSA"),
    }
)
_PRIVATE_KEYS = (
    rsa.RSAPrivateKey,
    ec.EllipticCurvePrivateKey,
    ed25519.Ed25519PrivateKey,
    ed448.Ed448PrivateKey,
)


def _b64url(data: bytes) -> bytes:
    """RFC 7515 base64url without padding."""
    return base64.urlsafe_b64encode(data).rstrip(b"=")


def claims_json(claims: Mapping[str, Any]) -> bytes:
    """Compact JSON of a claim set, in the order given.

    orjson's bytes, which for strings, integers, booleans, lists and objects are
    ``json.dumps(separators=(",", ":"), ensure_ascii=False)``'s (PyJWT escapes non-ASCII
    text, the same JSON value); what orjson refuses (integers beyond 64 bits, non-string
    keys, lone surrogates) goes through ``json`` as PyJWT would write it, and so do
    datetimes and dataclasses, which ``json`` refuses.
    """
    try:
        return orjson.dumps(claims, option=ORJSON_OPTIONS)
    except TypeError:
        return json.dumps(claims, separators=(",", ":")).encode("utf-8")


class JwsSigner:
    """Signs claim sets as compact JWS with one key and one header, both prepared once.

    Build it where the adapter is built (at config load), never per request:

    >>> signer = JwsSigner("HS256", key_bytes, headers={"kid": "k1"})  # doctest: +SKIP
    >>> token = signer.sign({"iss": "me", "exp": 1700000060})  # doctest: +SKIP

    :param algorithm: one of :data:`ALGORITHMS`.
    :param key: HMAC key bytes, or a private key (a ``cryptography`` key object, or
        PEM text, parsed here); a public key or a key that does not suit
        ``algorithm`` is a ``ValueError``.
    :param headers: header fields beside ``alg`` and ``typ`` (``kid``...).
    :param typ: the ``typ`` header (``None``: none), ``JWT`` as PyJWT writes it.
    :ivar key: the prepared key: bytes for HMAC, else the private key object.
    :ivar header: the header every token carries.
    """

    __slots__ = ("_algorithm", "_head", "algorithm", "header", "key")

    def __init__(
        self,
        algorithm: str,
        key: Any,
        *,
        headers: Mapping[str, Any] | None = None,
        typ: str | None = "JWT",
    ) -> None:
        if algorithm not in ALGORITHMS:
            raise ValueError(f"{algorithm!r} is not a JWS algorithm this signer uses")
        implementation: Algorithm = get_default_algorithms()[algorithm]
        try:
            prepared = implementation.prepare_key(key)
        except (InvalidKeyError, ValueError, TypeError) as error:
            raise ValueError(f"the key does not suit {algorithm}: {error}") from None
        symmetric = isinstance(implementation, HMACAlgorithm)
        if not symmetric and not isinstance(prepared, _PRIVATE_KEYS):
            raise ValueError(f"{algorithm} signs with a private key, not {type(prepared).__name__}")
        # PyJWT (the versions that check) warns of a short key at every encode; once, at
        # start, says the same.
        check_length = getattr(implementation, "check_key_length", None)
        weak = check_length(prepared) if check_length is not None else None
        if weak:
            warnings.warn(weak, stacklevel=2)
        header: dict[str, Any] = {"typ": typ, "alg": algorithm} if typ else {"alg": algorithm}
        header.update(headers or {})
        if header["alg"] != algorithm:
            raise ValueError("headers: alg is the signer's algorithm")
        if "kid" in header and not isinstance(header["kid"], str):
            raise ValueError("headers: kid must be a string")
        self.algorithm = algorithm
        self.key = prepared
        self.header = header
        self._algorithm = implementation
        encoded = json.dumps(header, separators=(",", ":"), sort_keys=True).encode("utf-8")
        self._head = _b64url(encoded) + b"."

    def sign(self, claims: Mapping[str, Any]) -> str:
        """The compact JWS of ``claims`` (values of JSON types; ``iss`` a string, as PyJWT
        insists)."""
        if "iss" in claims and not isinstance(claims["iss"], str):
            raise TypeError("Issuer (iss) must be a string.")
        return self.sign_payload(claims_json(claims))

    def sign_payload(self, payload: bytes) -> str:
        """The compact JWS of a payload already serialized (the bytes go as they are)."""
        signing_input = self._head + _b64url(payload)
        signature = self._algorithm.sign(signing_input, self.key)
        return (signing_input + b"." + _b64url(signature)).decode("ascii")

    def __repr__(self) -> str:
        return f"JwsSigner({self.algorithm!r}, headers={self.header!r})"
