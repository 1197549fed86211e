"""``[auth]``: where tokens come from and which issuers are accepted."""

from __future__ import annotations

from typing import Any

from pydantic import Field, field_validator, model_validator

from proxy.config import Duration, StrictModel
from proxy.secrets import SecretRef

HMAC_ALGORITHMS = frozenset({"HS256", "HS384", "HS512"})
RSA_ALGORITHMS = frozenset({"RS256", "RS384", "RS512", "PS256", "PS384", "PS512"})
EC_ALGORITHMS = frozenset({"ES256", "ES384", "ES512"})
OKP_ALGORITHMS = frozenset({"EdDSA"})
SUPPORTED_ALGORITHMS = HMAC_ALGORITHMS | RSA_ALGORITHMS | EC_ALGORITHMS | OKP_ALGORITHMS


class KeyConfig(StrictModel):
    """One verification key, inline by reference."""

    id: str | None = None
    """The ``kid`` this key answers to; a key without id serves tokens without ``kid``."""
    secret: SecretRef | None = None
    """A shared HMAC secret (HS256/384/512)."""
    public_key: SecretRef | None = None
    """A PEM public key (RSA, EC P-256/384/521, or Ed25519)."""

    @model_validator(mode="after")
    def _exactly_one(self) -> KeyConfig:
        given = [name for name in ("secret", "public_key") if getattr(self, name) is not None]
        if len(given) != 1:
            raise ValueError("give exactly one of secret or public_key")
        return self


class IssuerConfig(StrictModel):
    """An accepted token issuer (``[[auth.issuers]]``)."""

    issuer: str
    """The exact ``iss`` value."""
    audiences: list[str] = Field(min_length=1)
    """Accepted ``aud`` values; the token must name at least one."""
    algorithms: list[str] = Field(default_factory=lambda: ["RS256"], min_length=1)
    leeway: Duration = 30.0
    """Clock skew tolerated on ``exp``, ``nbf`` and ``iat``."""
    max_lifetime: Duration | None = None
    """Refuse tokens whose ``exp - iat`` (or ``exp - now``) is longer than this."""
    required_claims: list[str] = Field(default_factory=list)
    claim_values: dict[str, str | list[str]] = Field(default_factory=dict)
    """Claims that must hold one of the listed values (a list claim must contain one)."""
    keys: list[KeyConfig] = Field(default_factory=list)
    development: bool = False
    """Marks the embedded default's development issuer: refused on non-loopback listeners."""

    @field_validator("algorithms")
    @classmethod
    def _known_algorithms(cls, algorithms: list[str]) -> list[str]:
        for alg in algorithms:
            if alg not in SUPPORTED_ALGORITHMS:
                raise ValueError(
                    f"unsupported algorithm {alg!r} (one of {', '.join(sorted(SUPPORTED_ALGORITHMS))})"
                )
        return algorithms

    @model_validator(mode="after")
    def _has_keys(self) -> IssuerConfig:
        if not self.keys:
            raise ValueError("an issuer needs at least one key")
        return self


class AuthConfig(StrictModel):
    """``[auth]``: token sources and issuers."""

    header: str | None = None
    """A header that carries the raw token (besides ``Authorization: Bearer``)."""
    query_parameter: str | None = None
    """A query parameter that carries the token on the HTTP bridge."""
    issuers: list[IssuerConfig] = Field(default_factory=list)

    @field_validator("header")
    @classmethod
    def _lower(cls, value: Any) -> Any:
        return value.lower() if isinstance(value, str) else value
