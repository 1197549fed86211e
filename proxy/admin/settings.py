"""``[admin]``: the operators' listener, how its callers prove who they are, revocation checks."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import jwt
from cryptography.hazmat.primitives import serialization
from pydantic import Field, field_validator, model_validator

from proxy.config import ListenerConfig
from proxy.fields import Duration, StrictModel
from proxy.secrets import SecretRef

if TYPE_CHECKING:
    from jwt.types import Options

#: Algorithms an admin token may be signed with: an HMAC secret, or a public key.
HMAC_ALGORITHMS = frozenset({"HS256", "HS384", "HS512"})
PUBLIC_KEY_ALGORITHMS = frozenset(
    {"RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512", "EdDSA"}
)
#: The shortest HMAC secret accepted (RFC 7518 3.2: at least the hash's size).
MIN_SECRET_BYTES = 32


class AdminTokenSettings(StrictModel):
    """``[admin.token]``: the admin API's own token issuer.

    Admin tokens are JWS verified here, by the core, with keys of their own: a
    player's token (whatever its issuer) never opens the admin API, and an
    admin token names its operator (``sub``) for the decision log.
    """

    issuer: str = Field(min_length=1)
    """The ``iss`` every admin token carries."""
    audience: str = Field(default="license-proxy-admin", min_length=1)
    """The ``aud`` every admin token carries."""
    algorithms: list[str] = Field(default_factory=lambda: ["HS256"], min_length=1)
    """Accepted ``alg`` values: HS256/384/512 with ``secret``, or RS*, PS*, ES*, EdDSA with
    ``public_key``."""
    secret: SecretRef | None = None
    """The HMAC secret by reference (``env:NAME``, ``file:PATH``), at least 32 bytes."""
    public_key: SecretRef | None = None
    """A PEM public key by reference (``file:PATH``)."""
    leeway: Duration = 30.0
    """Clock skew allowed on ``exp``, ``nbf`` and ``iat``."""
    max_lifetime: Duration = 3600.0
    """The longest ``exp - iat`` accepted: admin tokens are short-lived."""

    @field_validator("algorithms")
    @classmethod
    def _known(cls, algorithms: list[str]) -> list[str]:
        unknown = set(algorithms) - HMAC_ALGORITHMS - PUBLIC_KEY_ALGORITHMS
        if unknown:
            raise ValueError(f"unknown or refused algorithm {sorted(unknown)[0]!r}")
        if set(algorithms) & HMAC_ALGORITHMS and set(algorithms) & PUBLIC_KEY_ALGORITHMS:
            raise ValueError("HMAC and public-key algorithms can't be mixed: one key verifies")
        return algorithms

    @model_validator(mode="after")
    def _one_key_for_the_algorithms(self) -> AdminTokenSettings:
        hmac = set(self.algorithms) <= HMAC_ALGORITHMS
        if hmac:
            if self.secret is None or self.public_key is not None:
                raise ValueError("HS* algorithms need secret (and no public_key)")
            if len(self.secret.value) < MIN_SECRET_BYTES:
                raise ValueError(f"secret: must be at least {MIN_SECRET_BYTES} bytes")
        elif self.public_key is None or self.secret is not None:
            raise ValueError("public-key algorithms need public_key (and no secret)")
        else:
            self.verification_key()
        return self

    def verification_key(self) -> Any:
        """The key PyJWT verifies with: the secret's bytes, or the parsed public key (parsed
        once, when the config is validated)."""
        if self.secret is not None:
            return self.secret.value
        assert self.public_key is not None
        cached = self.__dict__.get("_parsed_key")
        if cached is None:
            try:
                cached = serialization.load_pem_public_key(self.public_key.value)
            except (ValueError, TypeError):
                raise ValueError(
                    f"public_key: {self.public_key.reference} holds no PEM public key"
                ) from None
            self.__dict__["_parsed_key"] = cached
        return cached

    def jwt_options(self) -> Options:
        """PyJWT decode options: every time claim and the operator's ``sub`` required."""
        return {"require": ["exp", "iat", "iss", "aud", "sub"], "verify_signature": True}


class RevocationSettings(StrictModel):
    """``[admin.revocations]``: refusing revoked subjects and tokens."""

    enabled: bool | None = None
    """Check every license request against the revocations in the state store (one read,
    one Redis round trip with a Redis store). Default: on when someone can revoke (an
    ``[admin.token]`` is configured). Every replica sharing the store must check."""
    fail_open: bool = False
    """Admit requests when the state store can't be asked (default: STATE_UNAVAILABLE)."""
    max_duration: Duration = 90 * 86400.0
    """The longest revocation accepted; a revocation always ends (a token's ``exp`` ends it
    sooner in practice)."""


class AdminConfig(ListenerConfig):
    """``[admin]``: the admin API and ``/metrics`` on a listener of their own, loopback by
    default and never the player-facing one. Present = on."""

    port: int = Field(default=8081, ge=0, le=65535)
    metrics: bool = True
    """Serve ``GET /metrics`` (Prometheus) here, without a token (scrapers); the routes under
    ``/admin/v1/`` always need one."""
    token: AdminTokenSettings | None = None
    """The admin token issuer; without it (or client certificates) every admin route is
    refused."""
    revocations: RevocationSettings = RevocationSettings()

    @property
    def checks_revocations(self) -> bool:
        """Whether license requests are checked against revocations (see ``enabled``)."""
        enabled = self.revocations.enabled
        return self.token is not None if enabled is None else enabled

    @model_validator(mode="after")
    def _plain_http_only(self) -> AdminConfig:
        # ListenerConfig may carry TLS settings; the admin listener does not serve TLS, and
        # a setting it would ignore is refused instead.
        if getattr(self, "tls", None) is not None:
            raise ValueError("tls: the admin listener serves plain HTTP (keep it on loopback)")
        return self

    @model_validator(mode="after")
    def _no_open_admin_off_loopback(self) -> AdminConfig:
        if not self.is_loopback and self.token is None:
            raise ValueError(
                "an admin listener off loopback needs admin.token, so that its routes "
                "answer only operators"
            )
        return self


def decode_admin_token(token: str, settings: AdminTokenSettings) -> dict[str, Any]:
    """Verify an admin token; PyJWT's exceptions propagate (see :mod:`proxy.admin.auth`)."""
    return jwt.decode(
        token,
        settings.verification_key(),
        algorithms=settings.algorithms,
        audience=settings.audience,
        issuer=settings.issuer,
        leeway=settings.leeway,
        options=settings.jwt_options(),
    )


__all__ = ["AdminConfig", "AdminTokenSettings", "RevocationSettings", "decode_admin_token"]
