"""Token verification in the order DESIGN.md fixes: shape, issuer, key, signature, exp, nbf/iat,
audience, required claims. So an expired token with a good signature is TOKEN_EXPIRED whatever
else is wrong with it."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

import jwt
from jwt.algorithms import get_default_algorithms

from plugins.token.config import IssuerConfig
from plugins.token.keys import VerificationKey
from proxy.errors import ProxyError, Reason
from proxy.model import Principal

_ALGORITHMS = get_default_algorithms()
_JWS = jwt.PyJWS()


@dataclass(slots=True)
class Issuer:
    """An accepted issuer with its keys parsed."""

    config: IssuerConfig
    keys: list[VerificationKey]

    def candidate_keys(self, kid: str | None, alg: str) -> list[VerificationKey]:
        """Keys that may verify a token with this ``kid`` and ``alg``; raise when none can."""
        by_id = [k for k in self.keys if k.id == kid] if kid is not None else []
        if kid is not None and not by_id:
            # A token with a kid the config does not know may still be verified by
            # an id-less key (a single shared secret, say).
            by_id = [k for k in self.keys if k.id is None]
            if not by_id:
                raise ProxyError(Reason.TOKEN_KEY_UNKNOWN, "the token's key id is not known")
        candidates = by_id or self.keys
        fitting = [k for k in candidates if alg in k.algorithms]
        if not fitting:
            raise ProxyError(
                Reason.TOKEN_ALGORITHM_REJECTED, f"algorithm {alg} does not fit the issuer's keys"
            )
        return fitting


def _claims_contain(value: Any, accepted: Iterable[str]) -> bool:
    accepted = set(accepted)
    if isinstance(value, list):
        return any(isinstance(v, str) and v in accepted for v in value)
    return isinstance(value, str) and value in accepted


def _number(claims: dict[str, Any], name: str) -> float | None:
    value = claims.get(name)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ProxyError(Reason.TOKEN_MALFORMED, f"the {name} claim is not a number")
    return float(value)


class TokenVerifier:
    """Verifies compact JWS tokens against the configured issuers."""

    def __init__(
        self, issuers: list[Issuer], *, clock: Callable[[], float], max_token_bytes: int
    ) -> None:
        self.issuers = {i.config.issuer: i for i in issuers}
        self.clock = clock
        self.max_token_bytes = max_token_bytes

    def verify(self, token: str) -> Principal:
        """The principal ``token`` speaks for, or ProxyError with a TOKEN_* reason."""
        if len(token) > self.max_token_bytes:
            raise ProxyError(Reason.TOKEN_MALFORMED, "the token is too large")
        try:
            decoded = _JWS.decode_complete(token, options={"verify_signature": False})
        except jwt.DecodeError:
            raise ProxyError(Reason.TOKEN_MALFORMED, "the token is not a compact JWS") from None
        header: dict[str, Any] = decoded["header"]
        alg = header.get("alg")
        if not isinstance(alg, str) or alg not in _ALGORITHMS or alg.lower() == "none":
            raise ProxyError(
                Reason.TOKEN_ALGORITHM_REJECTED, "the token's algorithm is not accepted"
            )
        try:
            claims = json.loads(decoded["payload"])
        except (ValueError, UnicodeDecodeError):
            # Not a claim set; still check the signature first, so that a forged
            # token reads as forged rather than as malformed.
            claims = None
        issuer = self._issuer(claims)
        if alg not in issuer.config.algorithms:
            raise ProxyError(
                Reason.TOKEN_ALGORITHM_REJECTED, f"algorithm {alg} is not accepted for this issuer"
            )
        kid = header.get("kid")
        if kid is not None and not isinstance(kid, str):
            raise ProxyError(Reason.TOKEN_MALFORMED, "the token's kid is not a string")
        keys = issuer.candidate_keys(kid, alg)
        key = self._verify_signature(token, decoded["signature"], alg, keys)
        if not isinstance(claims, dict):
            raise ProxyError(Reason.TOKEN_MALFORMED, "the token's payload is not a claim set")
        self._check_claims(claims, issuer.config)
        subject = claims.get("sub")
        return Principal(
            subject=subject if isinstance(subject, str) else None,
            issuer=issuer.config.issuer,
            claims=claims,
            key_id=key.label,
            issuer_settings=issuer.config,
            token=token,
        )

    def _issuer(self, claims: Any) -> Issuer:
        iss = claims.get("iss") if isinstance(claims, dict) else None
        if iss is None:
            if len(self.issuers) == 1:
                return next(iter(self.issuers.values()))
            raise ProxyError(Reason.TOKEN_ISSUER_MISMATCH, "the token names no issuer")
        issuer = self.issuers.get(iss) if isinstance(iss, str) else None
        if issuer is None:
            raise ProxyError(Reason.TOKEN_ISSUER_MISMATCH, "the token's issuer is not accepted")
        return issuer

    @staticmethod
    def _verify_signature(
        token: str, signature: bytes, alg: str, keys: list[VerificationKey]
    ) -> VerificationKey:
        signing_input = token.rpartition(".")[0].encode()
        algorithm = _ALGORITHMS[alg]
        for key in keys:
            if algorithm.verify(signing_input, key.prepared[alg], signature):
                return key
        raise ProxyError(Reason.TOKEN_SIGNATURE_INVALID, "the token's signature does not verify")

    def _check_claims(self, claims: dict[str, Any], issuer: IssuerConfig) -> None:
        now = self.clock()
        leeway = issuer.leeway
        exp = _number(claims, "exp")
        if exp is None:
            raise ProxyError(Reason.TOKEN_CLAIM_MISSING, "the token has no exp claim")
        if exp <= now - leeway:
            raise ProxyError(Reason.TOKEN_EXPIRED, "the token has expired")
        nbf = _number(claims, "nbf")
        if nbf is not None and nbf > now + leeway:
            raise ProxyError(Reason.TOKEN_NOT_YET_VALID, "the token is not valid yet")
        iat = _number(claims, "iat")
        if iat is not None and iat > now + leeway:
            raise ProxyError(Reason.TOKEN_NOT_YET_VALID, "the token was issued in the future")
        if issuer.max_lifetime is not None:
            lifetime = exp - (iat if iat is not None else now)
            if lifetime > issuer.max_lifetime + leeway:
                raise ProxyError(Reason.TOKEN_EXPIRED, "the token's lifetime exceeds the maximum")
        aud = claims.get("aud")
        if aud is None or not _claims_contain(aud, issuer.audiences):
            raise ProxyError(Reason.TOKEN_AUDIENCE_MISMATCH, "the token's audience is not accepted")
        for name in issuer.required_claims:
            if claims.get(name) is None:
                raise ProxyError(Reason.TOKEN_CLAIM_MISSING, f"the token has no {name} claim")
        for name, accepted in issuer.claim_values.items():
            if name not in claims:
                raise ProxyError(Reason.TOKEN_CLAIM_MISSING, f"the token has no {name} claim")
            values = [accepted] if isinstance(accepted, str) else accepted
            if not _claims_contain(claims[name], values):
                raise ProxyError(
                    Reason.TOKEN_CLAIM_MISSING, f"the token's {name} claim has no accepted value"
                )


__all__ = ["Issuer", "TokenVerifier"]
