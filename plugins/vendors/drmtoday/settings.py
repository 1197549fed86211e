"""``[backends.NAME]`` with ``vendor = "drmtoday"``: the merchant, the upfront-token secret, the URLs.

Facts the public material leaves open (VENDOR_FACTS 9, UNVERIFIED) are settings here,
each defaulting to the documented or observed choice; docs/vendors.md lists them.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field, field_validator

from proxy import DrmSystem, Duration, Secret, TrackType, UpstreamSettings

#: Production; staging is ``https://lic.staging.drmtoday.com``, test ``https://lic.test.drmtoday.com``.
PRODUCTION = "https://lic.drmtoday.com"
PATHS = {
    DrmSystem.WIDEVINE: "/license-proxy-widevine/cenc/",
    DrmSystem.PLAYREADY: "/license-proxy-headerauth/drmtoday/RightsManager.asmx",
    DrmSystem.FAIRPLAY: "/license-server-fairplay/",
}
DEFAULT_URLS = {drm: PRODUCTION + path for drm, path in PATHS.items()}
#: The quality classes seen in a castLabs sample's ``op.config`` (``HD``, ``UHD``); whether
#: DRMtoday knows others (``SD``, ``AUDIO``) is UNVERIFIED, so no other type is mapped.
DEFAULT_QUALITY_CLASSES = {TrackType.HD: "HD", TrackType.UHD1: "UHD", TrackType.UHD2: "UHD"}


def environment_urls(base: str) -> dict[DrmSystem, str]:
    """The license URL of each DRM for an environment's base URL (``https://lic.staging...``)."""
    return {drm: base.rstrip("/") + path for drm, path in PATHS.items()}


class DrmTodaySettings(UpstreamSettings):
    """``[backends.NAME]`` with ``vendor = "drmtoday"``."""

    urls: dict[DrmSystem, str] = Field(default_factory=lambda: dict(DEFAULT_URLS))
    """License URL per DRM (production by default)."""
    merchant: str = Field(min_length=1)
    """The merchant (organisation) API name: ``optData.merchant``."""
    auth_key_id: str = Field(min_length=1)
    """The shared secret's id at DRMtoday: the token's ``kid``."""
    auth_secret: Secret
    """The shared secret by reference: hex text (32 bytes recommended), as DRMtoday shows it;
    its bytes are the HMAC key."""
    auth_algorithm: Literal["HS256", "HS384", "HS512"] = "HS256"
    token_lifetime: Duration = Field(default=60.0, gt=0, le=3600)
    """``exp - iat`` of each upfront token (DRMtoday's accepted window is UNVERIFIED)."""
    widevine_spec_conform: bool = False
    """``?specConform=true``: Widevine answers are the raw license. Off (castLabs' own demos):
    the JSON answer, whose device fields reach ``vendor_metadata``."""
    custom_data_header: Literal["none", "x-dt-custom-data", "dt-custom-data"] = "none"
    """Also send the custom data header beside the token (castLabs' iOS demo sends the token
    alone, its Android demo both; which spelling DRMtoday prefers is open)."""
    session_id_claim: str | None = "sid"
    """Token claim that becomes ``optData.sessionId`` (request metadata ``session_id`` wins)."""
    crt_ref: list[str] = Field(default_factory=list)
    """CRT templates to apply (``ref``, e.g. ``[":template_id"]``)."""
    crt_profile: Literal["typed", "keyed"] = "typed"
    """The CRT ``profile`` shape: ``{"type": "rental", ...}`` or ``{"rental": {...}}`` (both are
    seen; which is canonical is UNVERIFIED)."""
    quality_classes: dict[TrackType, str] = Field(
        default_factory=lambda: dict(DEFAULT_QUALITY_CLASSES)
    )
    """Track type -> the ``op.config`` quality class its Widevine rules go to. Rules of a
    type not listed can't be rendered (the names beyond ``HD``, ``UHD`` are UNVERIFIED)."""
    hdcp_names: Literal["compact", "widevine"] = "compact"
    """``requireHDCP`` spelling: ``HDCP_V22`` (seen in castLabs' sample) or ``HDCP_V2_2``."""
    fairplay_asset_in_body: bool = False
    """Add ``assetId`` (and ``variantId``) to the FairPlay form, as some players do; castLabs'
    own demo leaves them out (they override the key URI's, and fail for multi-key content)."""
    log_request_id: bool = True
    """Send ``logRequestId`` (32 hex digits, also in ``vendor_metadata``) for castLabs' tracing."""

    @field_validator("urls")
    @classmethod
    def _http_urls(cls, urls: dict[DrmSystem, str]) -> dict[DrmSystem, str]:
        for drm, url in urls.items():
            if drm not in PATHS:
                raise ValueError(f"{drm.value}: DRMtoday serves widevine, playready and fairplay")
            if not url.startswith(("https://", "http://")):
                raise ValueError(f"{drm.value}: {url!r} is not an http(s) URL")
        return urls
