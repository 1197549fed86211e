"""The ``challenge_clearkey`` plugin: inspects W3C ClearKey requests."""

from __future__ import annotations

from proxy import hookimpl
from proxy.challenge.clearkey import DRM, looks_like_clearkey, parse_clearkey
from proxy.challenge.common import adopt_request_content_id, guarded
from proxy.model import ChallengeInfo, DrmSystem, RequestContext


class ClearKeyInspector:
    """Claims ClearKey challenges: named as such, or JSON with ``kids`` when undetected."""

    @hookimpl
    def proxy_inspect_challenge(self, ctx: RequestContext) -> ChallengeInfo | None:
        """Parse the challenge when it is a ClearKey one."""
        drm = ctx.request.drm_system
        body = ctx.request.challenge
        if drm is DrmSystem.CLEARKEY or (drm is None and looks_like_clearkey(body)):
            return adopt_request_content_id(ctx, guarded(DRM, lambda: parse_clearkey(body)))
        return None
