"""``[backends.NAME]`` with ``vendor = "azure"``: URL templates, and the token to mint or pass on.

``policy_enforced_by_vendor`` (every backend has it) says that the content key
policy configured at Azure or MK.IO enforces the policy's rules for the DRMs it
names: raw requests (PlayReady, FairPlay, Widevine unless ``widevine_request =
"template"``) carry only the challenge and the token.
"""

from __future__ import annotations

import string
from typing import Literal

from pydantic import Field, model_validator

from proxy import DrmSystem, Duration, Secret, UpstreamSettings

#: Azure refuses tokens with ``maxuses`` that expire more than this far ahead (VENDOR_FACTS 3.3).
MAX_USES_LIFETIME = 3600
_PLACEHOLDERS = frozenset({"kid", "content_id"})


class AzureSettings(UpstreamSettings):
    """``[backends.NAME]`` with ``vendor = "azure"`` (Azure Media Services or MK.IO)."""

    urls: dict[DrmSystem, str]
    """License URL template per DRM, e.g.
    ``https://ACCOUNT.keydelivery.REGION.media.azure.net/Widevine/?kid={kid}``.
    MK.IO's URLs come from its streaming locator's ``listPaths`` (their shape is UNVERIFIED)."""
    service_certificate_url: str | None = None
    """Where Widevine service-certificate requests go when the Widevine template needs a
    key id they don't carry (no placeholders)."""
    renewal_url: str | None = None
    """Where Widevine renewals and releases (which name an existing license, not keys) go
    when the Widevine template needs a key id and the request sends no ``key_id`` hint
    (no placeholders)."""
    bearer: Literal["mint", "passthrough"] = "mint"
    """Mint the token restriction's JWT, or forward the customer's own token."""
    issuer: str | None = None
    audience: str | None = None
    signing_key: Secret | None = None
    """HS256: the symmetric key (base64 text, as Azure shows it); RS256: a PEM private key."""
    algorithm: Literal["HS256", "RS256"] = "HS256"
    key_id: str | None = None
    """``kid`` header, when the restriction holds several keys."""
    token_lifetime: Duration = Field(default=300.0, gt=0, le=86400)
    content_key_identifier: bool = True
    """Add the ``contentkeyidentifier`` required claim (the key id as a GUID)."""
    max_uses: int | None = Field(default=None, ge=1)
    """Add the ``maxuses`` replay claim (Azure then refuses tokens living over 1 h, so
    ``token_lifetime`` must be 1 h or less)."""
    claims: dict[str, str | int | bool] = Field(default_factory=dict)
    """Fixed claims the restriction requires."""
    forward_claims: list[str] = Field(default_factory=list)
    """Claims copied from the customer's token (MK.IO elects a policy option by them)."""
    policy_claim: str | None = None
    """A claim that carries the elected policy's name, for option election by claim."""
    bearer_in: Literal["header", "query"] = "header"
    """``Authorization: Bearer`` or the ``token`` query parameter."""
    fairplay_asset_id: bool = True
    """Send ``assetId`` (the content id, else the key id) beside the SPC."""
    widevine_request: Literal["raw", "template"] = "raw"
    """``template``: send Widevine challenges in the JSON license-template form (seed 000)."""
    widevine_provider: str | None = None
    use_policy_overrides_exclusively: bool | None = None

    @model_validator(mode="after")
    def _mint_needs_keys(self) -> AzureSettings:
        if self.bearer == "mint":
            missing = [n for n in ("issuer", "audience", "signing_key") if getattr(self, n) is None]
            if missing:
                raise ValueError(f"bearer = 'mint' needs {', '.join(missing)}")
        if self.max_uses is not None and self.token_lifetime > MAX_USES_LIFETIME:
            raise ValueError(
                "max_uses: Azure refuses a maxuses token that expires more than 1 h ahead; "
                "keep token_lifetime at 1h or less"
            )
        for drm, template in self.urls.items():
            try:
                fields = {f for _, f, _, _ in string.Formatter().parse(template) if f is not None}
            except ValueError:
                raise ValueError(f"urls.{drm.value}: not a valid template") from None
            unknown = fields - _PLACEHOLDERS
            if unknown:
                raise ValueError(
                    f"urls.{drm.value}: unknown placeholder {sorted(unknown)[0]!r} "
                    "(use {kid} or {content_id})"
                )
            if not template.startswith(("https://", "http://")):
                raise ValueError(f"urls.{drm.value}: not an http(s) URL")
        for name in ("service_certificate_url", "renewal_url"):
            url = getattr(self, name)
            if url and not url.startswith(("https://", "http://")):
                raise ValueError(f"{name}: not an http(s) URL")
        return self
