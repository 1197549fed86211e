"""``[backends.NAME]`` with ``vendor = "verimatrix"``: the Service Access Key and the token's shape."""

from __future__ import annotations

from typing import Any, Literal

from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from cryptography.hazmat.primitives.serialization import load_pem_private_key
from pydantic import Field, model_validator

from proxy import PLAYREADY_CONTENT_TYPE, DrmSystem, Duration, Secret, UpstreamSettings

DEFAULT_URLS = {
    DrmSystem.WIDEVINE: "https://multidrm.vsaas.verimatrixcloud.net/widevine",
    DrmSystem.PLAYREADY: "https://multidrm.vsaas.verimatrixcloud.net/playready",
    DrmSystem.FAIRPLAY: "https://multidrm.vsaas.verimatrixcloud.net/fairplay",
}
#: Verimatrix rejects tokens older than this many seconds after ``iat``: the current doc
#: says 120, an older one 90 (VENDOR_FACTS 2.5). 90 is the default; 120 only on request.
MAX_TOKEN_AGE = 120
DEFAULT_MAX_TOKEN_AGE = 90

_ALGORITHMS: dict[str, type] = {
    "ES256": ec.EllipticCurvePrivateKey,
    "ES384": ec.EllipticCurvePrivateKey,
    "RS256": rsa.RSAPrivateKey,
    "PS256": rsa.RSAPrivateKey,
    "EdDSA": ed25519.Ed25519PrivateKey,
}


class VerimatrixSettings(UpstreamSettings):
    """``[backends.NAME]`` with ``vendor = "verimatrix"``."""

    urls: dict[DrmSystem, str] = Field(default_factory=lambda: dict(DEFAULT_URLS))
    """License URL per DRM (the tenant's host, vsaas or core, is UNVERIFIED)."""
    signing_key: Secret
    """The Service Access Key's private half (PEM) by reference."""
    key_id: str = Field(min_length=1)
    """The Service Access Key id, sent as the JWT ``kid``."""
    algorithm: Literal["ES256", "ES384", "RS256", "PS256", "EdDSA"] = "ES256"
    audience: str = Field(min_length=1)
    """``aud``: the purpose the key was registered for."""
    issuer: str | None = None
    """``iss``, when Verimatrix gave you one (its value is UNVERIFIED)."""
    payload_version: int | None = None
    """``ver``, when Verimatrix gave you one (its value is UNVERIFIED)."""
    token_lifetime: Duration = Field(default=60.0, gt=0, le=MAX_TOKEN_AGE)
    """Seconds from ``iat`` to ``exp``, at most ``max_token_age``."""
    max_token_age: int = Field(default=DEFAULT_MAX_TOKEN_AGE, ge=1, le=MAX_TOKEN_AGE)
    """The longest token the tenant accepts after ``iat``: 90 s, which both versions of
    Verimatrix's doc allow; raise it to 120 (the current doc's limit) only for a tenant
    known to accept it."""
    authorization: Literal["raw", "bearer"] = "raw"
    """How the token sits in ``Authorization``: raw (public integrations), or ``Bearer``."""
    send_subscriber: bool = False
    """Add ``subscriber`` (the token's subject); Verimatrix advises it only when needed."""
    send_device: bool = False
    """Add ``device`` (the trusted caller's device id) when known."""
    security_policy_drms: list[DrmSystem] = Field(default_factory=lambda: [DrmSystem.WIDEVINE])
    """DRMs whose security policy objects are rendered. Widevine's field names are
    documented; the PlayReady and FairPlay objects' names are UNVERIFIED."""
    policy_claim: bool = True
    """Render the license settings as the ``policy`` claim (field names OBSERVED-3P)."""
    service_certificate_subject: str = "service-certificate"
    """``sub`` for a Widevine service-certificate request that names no content."""
    playready_content_type: str = PLAYREADY_CONTENT_TYPE

    @model_validator(mode="after")
    def _lifetime_within_the_token_age(self) -> VerimatrixSettings:
        if self.token_lifetime > self.max_token_age:
            raise ValueError(
                f"token_lifetime: {self.token_lifetime:g} s is longer than max_token_age "
                f"({self.max_token_age} s); Verimatrix would refuse the token"
            )
        return self


def load_private_key(settings: VerimatrixSettings) -> Any:
    """The Service Access Key's private half, checked against the algorithm (at start)."""
    try:
        key = load_pem_private_key(settings.signing_key.value, password=None)
    except (ValueError, TypeError):
        raise ValueError(
            f"signing_key ({settings.signing_key.reference}) is not an unencrypted PEM private key"
        ) from None
    expected = _ALGORITHMS[settings.algorithm]
    if not isinstance(key, expected):
        raise ValueError(f"signing_key does not suit algorithm {settings.algorithm}")
    curve = key.curve if isinstance(key, ec.EllipticCurvePrivateKey) else None
    if settings.algorithm == "ES256" and not isinstance(curve, ec.SECP256R1):
        raise ValueError("signing_key: ES256 needs a P-256 key")
    if settings.algorithm == "ES384" and not isinstance(curve, ec.SECP384R1):
        raise ValueError("signing_key: ES384 needs a P-384 key")
    return key
