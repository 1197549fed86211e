"""``[backends.NAME]`` with ``vendor = "ezdrm"``: the per-DRM ``pX`` profiles and URLs.

EZDRM's own integration documents are behind its portal (VENDOR_FACTS 11): what is
public is the URL shape per DRM and the ``pX`` query parameter, 6 upper-case hex
characters in every sample, whose meaning (account id, or the last digits of a
per-DRM profile id) is UNVERIFIED. It is taken as an opaque per-DRM tenant value.
"""

from __future__ import annotations

from typing import Annotated

from pydantic import Field, StringConstraints, model_validator

from proxy import DrmSystem, Secret, UpstreamSettings

DEFAULT_URLS = {
    DrmSystem.WIDEVINE: "https://widevine-dash.ezdrm.com/proxy",
    DrmSystem.PLAYREADY: "https://playready.ezdrm.com/cency/preauth.aspx",
    DrmSystem.FAIRPLAY: "https://fps.ezdrm.com/api/licenses/{content_id}",
}
#: The DRMs whose license URL takes a ``pX`` (FairPlay's names the content instead).
PX_DRMS = frozenset({DrmSystem.WIDEVINE, DrmSystem.PLAYREADY})

#: A ``pX`` value: 6 upper-case hex characters in every public sample; anything short and
#: alphanumeric is accepted here, since that it is always 6 hex characters is UNVERIFIED.
Px = Annotated[str, StringConstraints(pattern=r"^[0-9A-Za-z]{1,32}$")]
#: A query parameter name.
ParamName = Annotated[str, StringConstraints(pattern=r"^[A-Za-z][A-Za-z0-9_.-]{0,63}$")]


class EzdrmSettings(UpstreamSettings):
    """``[backends.NAME]`` with ``vendor = "ezdrm"``."""

    urls: dict[DrmSystem, str] = Field(default_factory=lambda: dict(DEFAULT_URLS))
    """License URL per DRM; FairPlay's holds ``{content_id}``, the part of the key URI
    after ``;``."""
    px: dict[DrmSystem, Px] = Field(default_factory=dict)
    """The ``pX`` profile per DRM (``widevine``, ``playready``): a DRM without one is not
    served by this backend."""
    policy_px: dict[str, dict[DrmSystem, Px]] = Field(default_factory=dict)
    """``pX`` by elected policy name: an EZDRM profile per policy, so that the profile
    holding a policy's license rules serves it. Policies not listed use ``px``."""
    custom_data: Secret | None = None
    """What the tenant's setup expects in ``CustomData`` (sent base64-encoded), by
    reference; Bitmovin documents it for Widevine, "if your setup requires" it."""
    custom_data_drms: list[DrmSystem] = Field(default_factory=lambda: [DrmSystem.WIDEVINE])
    """The DRMs whose URL gets ``CustomData`` (only Widevine's is documented)."""
    user_id_param: ParamName | None = None
    """A query parameter carrying the token's subject, for a customer authorization
    callback EZDRM forwards URL parameters to (its contract is UNVERIFIED); off by default."""
    playready_content_type: str = "text/xml; charset=utf-8"
    """PlayReady request Content-Type; that EZDRM takes the standard SOAP exchange is
    UNVERIFIED."""

    @model_validator(mode="after")
    def _profiles_fit_the_drms(self) -> EzdrmSettings:
        if DrmSystem.FAIRPLAY in self.px:
            raise ValueError("px.fairplay: EZDRM's FairPlay URL names the content and takes no pX")
        if DrmSystem.CLEARKEY in self.px or DrmSystem.CLEARKEY in self.urls:
            raise ValueError("EZDRM serves no ClearKey")
        for policy, profiles in self.policy_px.items():
            for drm in profiles:
                if drm not in self.px:
                    raise ValueError(
                        f"policy_px.{policy}.{drm.value}: give px.{drm.value} too "
                        "(the profile of every other policy)"
                    )
        for drm, url in self.urls.items():
            if not url.startswith(("https://", "http://")):
                raise ValueError(f"urls.{drm.value}: {url!r} is not an http(s) URL")
        fairplay = self.urls.get(DrmSystem.FAIRPLAY)
        if fairplay is not None and "{content_id}" not in fairplay:
            raise ValueError("urls.fairplay: must hold {content_id} (EZDRM's /api/licenses/<id>)")
        for drm in PX_DRMS & set(self.urls):
            if "?" in self.urls[drm] and "pX=" in self.urls[drm]:
                raise ValueError(f"urls.{drm.value}: give the pX in px.{drm.value}, not the URL")
        return self

    def served(self) -> frozenset[DrmSystem]:
        """The DRMs this backend serves: a URL, and for Widevine and PlayReady a ``pX``."""
        return frozenset(drm for drm in self.urls if drm is DrmSystem.FAIRPLAY or drm in self.px)

    def profile(self, drm: DrmSystem, policy: str) -> str | None:
        """The ``pX`` for ``drm`` under the elected ``policy``."""
        return self.policy_px.get(policy, {}).get(drm) or self.px.get(drm)
