"""The ``challenge_clearkey`` plugin: inspects W3C ClearKey requests."""

from __future__ import annotations

from proxy import hookimpl
from proxy.challenge.clearkey import looks_like_clearkey, parse_clearkey
from proxy.model import ChallengeInfo, DrmSystem, RequestContext


class ClearKeyInspector:
    """Claims ClearKey challenges: named as such, or JSON with ``kids`` when undetected."""

    @hookimpl
    def proxy_inspect_challenge(self, ctx: RequestContext) -> ChallengeInfo | None:
        """Parse the challenge when it is a ClearKey one."""
        drm = ctx.request.drm_system
        if drm is DrmSystem.CLEARKEY or (
            drm is None and looks_like_clearkey(ctx.request.challenge)
        ):
            return parse_clearkey(ctx.request.challenge)
        return None
