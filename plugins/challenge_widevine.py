"""The ``challenge_widevine`` plugin: inspects Widevine license and service-certificate requests."""

from __future__ import annotations

from proxy import hookimpl
from proxy.challenge.common import adopt_request_content_id, guarded
from proxy.challenge.widevine import DRM, looks_like_widevine, parse_widevine
from proxy.model import ChallengeInfo, DrmSystem, RequestContext


class WidevineInspector:
    """Claims Widevine challenges: named as such, or a SignedMessage when undetected."""

    @hookimpl
    def proxy_inspect_challenge(self, ctx: RequestContext) -> ChallengeInfo | None:
        """Parse the challenge when it is a Widevine one."""
        drm = ctx.request.drm_system
        body = ctx.request.challenge
        if drm is DrmSystem.WIDEVINE or (drm is None and looks_like_widevine(body)):
            return adopt_request_content_id(ctx, guarded(DRM, lambda: parse_widevine(body)))
        return None
