"""The ``challenge_fairplay`` plugin: inspects FairPlay SPCs in any framing.

Config (optional)::

    [challenge.fairplay]
    content_id_convention = "generic"   # or "axinom", "verimatrix"
"""

from __future__ import annotations

from proxy import ConfigContext, StrictModel, hookimpl
from proxy.challenge.common import guarded
from proxy.challenge.fairplay import (
    DRM,
    ContentIdConvention,
    looks_like_fairplay,
    parse_fairplay,
)
from proxy.model import ChallengeInfo, DrmSystem, RequestContext


class FairPlaySettings(StrictModel):
    """``[challenge.fairplay]``: how key URIs and asset ids name the content."""

    content_id_convention: ContentIdConvention = ContentIdConvention.GENERIC
    """``axinom``: ``[skd://]<key id GUID>[:<IV hex>]`` (gives the key id);
    ``verimatrix``: strip ``skd://`` and ``?query``; ``generic``: the part after
    ``?``, else the last path segment."""


class FairPlayInspector:
    """Claims FairPlay challenges: named as such, or an SPC, ``spc=`` form or
    ``{"spc"}`` JSON when undetected."""

    def __init__(self) -> None:
        self.settings = FairPlaySettings()

    @hookimpl
    def proxy_configure(self, config: ConfigContext) -> None:
        """Read ``[challenge.fairplay]``."""
        settings = config.section("challenge.fairplay", FairPlaySettings)
        if settings is not None:
            self.settings = settings

    @hookimpl
    def proxy_inspect_challenge(self, ctx: RequestContext) -> ChallengeInfo | None:
        """Parse the challenge when it is a FairPlay one; the payload becomes the raw SPC."""
        drm = ctx.request.drm_system
        body = ctx.request.challenge
        if drm is DrmSystem.FAIRPLAY or (drm is None and looks_like_fairplay(body)):
            return guarded(
                DRM,
                lambda: parse_fairplay(
                    body,
                    content_id=ctx.request.content_id,
                    convention=self.settings.content_id_convention,
                ),
            )
        return None
