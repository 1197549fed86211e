"""``[auth]``: where tokens come from and which issuers are accepted."""

from __future__ import annotations

import ipaddress
from typing import Any
from urllib.parse import urlsplit

from pydantic import Field, field_validator, model_validator

from proxy import Duration, Secret, StrictModel

HMAC_ALGORITHMS = frozenset({"HS256", "HS384", "HS512"})
RSA_ALGORITHMS = frozenset({"RS256", "RS384", "RS512", "PS256", "PS384", "PS512"})
EC_ALGORITHMS = frozenset({"ES256", "ES384", "ES512"})
OKP_ALGORITHMS = frozenset({"EdDSA"})
SUPPORTED_ALGORITHMS = HMAC_ALGORITHMS | RSA_ALGORITHMS | EC_ALGORITHMS | OKP_ALGORITHMS

#: A value a claim may be required to hold; strings, whole numbers and booleans compare exactly.
ClaimValue = str | bool | int

_KEY_SOURCES = ("secret", "public_key", "certificate", "jwk", "jwks")
#: The longest ``renewal_grace`` accepted: a day past a token's expiry.
MAX_RENEWAL_GRACE = 86400.0


def _check_algorithm(alg: str) -> str:
    if alg not in SUPPORTED_ALGORITHMS:
        raise ValueError(
            f"unsupported algorithm {alg!r} (one of {', '.join(sorted(SUPPORTED_ALGORITHMS))})"
        )
    return alg


def _is_loopback_host(host: str | None) -> bool:
    if not host:
        return False
    if host in ("localhost", "ip6-localhost"):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def check_key_url(value: str | None) -> str | None:
    if value is None:
        return None
    try:
        url = urlsplit(value)
        host = url.hostname
    except ValueError:
        host = None
    if not host:
        raise ValueError(f"{value!r} is not an absolute URL")
    if url.scheme == "https" or (url.scheme == "http" and _is_loopback_host(host)):
        return value
    raise ValueError("must be an https URL (plain http only for a loopback host)")


class KeyConfig(StrictModel):
    """One verification key, inline by reference (``env:``, ``file:``, ``hex:``, ``base64:``)."""

    id: str | None = None
    """The ``kid`` this key answers to; a key without id serves tokens whatever their ``kid``.
    For ``jwk``/``jwks`` the JWK's own ``kid`` is used when this is not set."""
    algorithm: str | None = None
    """Pin the key to this one algorithm (it must fit the key's type)."""
    secret: Secret | None = None
    """A shared HMAC secret (HS256/384/512), at least as long as the hash output."""
    public_key: Secret | None = None
    """A PEM public key (RSA of 2048 bits or more, EC P-256/384/521, or Ed25519)."""
    certificate: Secret | None = None
    """An X.509 certificate (PEM or DER) whose public key verifies the tokens."""
    jwk: Secret | None = None
    """A JSON Web Key (public members are used; private ones are ignored)."""
    jwks: Secret | None = None
    """A JSON Web Key Set: every usable signing key in it."""

    @field_validator("algorithm")
    @classmethod
    def _known_algorithm(cls, alg: str | None) -> str | None:
        return None if alg is None else _check_algorithm(alg)

    @model_validator(mode="after")
    def _exactly_one(self) -> KeyConfig:
        given = [name for name in _KEY_SOURCES if getattr(self, name) is not None]
        if len(given) != 1:
            raise ValueError(f"give exactly one of {', '.join(_KEY_SOURCES)}")
        return self

    @property
    def source(self) -> str:
        """Which field holds the key material."""
        return next(name for name in _KEY_SOURCES if getattr(self, name) is not None)


class RefreshConfig(StrictModel):
    """How an issuer's remote key set (``jwks_uri`` or discovery) is kept fresh."""

    interval: Duration = 3600.0
    """Refresh period when the endpoint sends no ``Cache-Control: max-age``."""
    min_interval: Duration = 300.0
    """Lower bound on the endpoint's ``max-age``."""
    max_interval: Duration = 86400.0
    """Upper bound on the endpoint's ``max-age``."""
    unknown_kid_interval: Duration = 30.0
    """A token whose ``kid`` is not in the set triggers at most one fetch per this interval."""
    retry_interval: Duration = 10.0
    """First retry after a failed fetch; doubles on each failure up to ``interval``."""
    timeout: Duration = Field(default=5.0, gt=0)
    """How long one fetch (each of discovery and key set) may take."""
    max_keys: int = Field(default=100, gt=0)
    """Largest number of keys accepted from one key set."""
    max_bytes: int = Field(default=512 * 1024, gt=0)
    """Largest discovery or key-set document accepted."""

    @model_validator(mode="after")
    def _ordered(self) -> RefreshConfig:
        if self.min_interval > self.max_interval:
            raise ValueError("min_interval is larger than max_interval")
        if not self.min_interval <= self.interval <= self.max_interval:
            raise ValueError("interval must lie between min_interval and max_interval")
        if self.retry_interval <= 0:
            raise ValueError("retry_interval must be more than 0")
        return self


class IssuerConfig(StrictModel):
    """An accepted token issuer (``[[auth.issuers]]``)."""

    issuer: str
    """The exact ``iss`` value."""
    audiences: list[str] = Field(min_length=1)
    """Accepted ``aud`` values; the token must name at least one."""
    algorithms: list[str] = Field(default_factory=lambda: ["RS256"], min_length=1)
    """The algorithms this issuer's tokens may use; each key also fits only its own family."""
    leeway: Duration = 30.0
    """Clock skew tolerated on ``exp``, ``nbf`` and ``iat``."""
    max_lifetime: Duration | None = None
    """Refuse tokens whose ``exp - iat`` (or ``exp - now``) is longer than this."""
    required_claims: list[str] = Field(default_factory=list)
    """Claims that must be present (any value but null)."""
    claim_values: dict[str, ClaimValue | list[ClaimValue]] = Field(default_factory=dict)
    """Claims that must hold one of the listed values (a list claim must contain one)."""
    keys: list[KeyConfig] = Field(default_factory=list)
    """Keys given inline by reference."""
    jwks_uri: str | None = None
    """A JSON Web Key Set URL, fetched in the background and refreshed."""
    openid_configuration: str | None = None
    """An OpenID Connect discovery URL; its ``jwks_uri`` is used (its ``issuer`` must match)."""
    refresh: RefreshConfig = RefreshConfig()
    """Refresh schedule and limits of the remote key set."""
    trust_policy_claims: bool = False
    """Whether this issuer's Verimatrix/Axinom-style policy claims (``security_policy``,
    ``policy``, ...) may tighten the elected policy. Only issuers that mint tokens for
    license delivery should set it."""
    development: bool = False
    """Marks the embedded default's development issuer: refused on non-loopback listeners."""
    renewal_grace: Duration = 0.0
    """Seconds past its ``exp`` a token still serves a renewal or release of a license
    session this proxy licensed while the token was valid (docs/auth.md); 0: off."""

    @field_validator("renewal_grace")
    @classmethod
    def _bounded_grace(cls, value: float) -> float:
        if not 0 <= value <= MAX_RENEWAL_GRACE:
            raise ValueError(f"must lie between 0 and {MAX_RENEWAL_GRACE:.0f} seconds (a day)")
        return value

    @field_validator("algorithms")
    @classmethod
    def _known_algorithms(cls, algorithms: list[str]) -> list[str]:
        for alg in algorithms:
            _check_algorithm(alg)
        return algorithms

    @field_validator("jwks_uri", "openid_configuration")
    @classmethod
    def _url(cls, value: str | None) -> str | None:
        return check_key_url(value)

    @model_validator(mode="after")
    def _has_keys(self) -> IssuerConfig:
        if self.jwks_uri and self.openid_configuration:
            raise ValueError("give jwks_uri or openid_configuration, not both")
        if not self.keys and not self.remote_url:
            raise ValueError("an issuer needs keys, a jwks_uri or an openid_configuration")
        return self

    @property
    def remote_url(self) -> str | None:
        """The URL remote keys come from (discovery or key set), if any."""
        return self.openid_configuration or self.jwks_uri


class AuthConfig(StrictModel):
    """``[auth]``: token sources, the verification cache and the issuers."""

    header: str | None = None
    """A header that carries the raw token (besides ``Authorization: Bearer``)."""
    query_parameter: str | None = None
    """A query parameter that carries the token on the HTTP bridge."""
    cookie: str | None = Field(default=None, pattern=r"^[!#$%&'*+.^_`|~0-9A-Za-z-]+$")
    """A cookie that carries the token, read last; a request from a web page whose
    ``Origin`` is not in ``server.cors.allow_origins`` may not use it."""
    cache_size: int = Field(default=4096, ge=0)
    """Verified tokens remembered (renewals and repeated requests skip the signature); 0: off."""
    issuers: list[IssuerConfig] = Field(default_factory=list)

    @field_validator("header")
    @classmethod
    def _lower(cls, value: Any) -> Any:
        return value.lower() if isinstance(value, str) else value
