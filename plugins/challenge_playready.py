"""The ``challenge_playready`` plugin: inspects PlayReady license acquisition challenges."""

from __future__ import annotations

from proxy import hookimpl
from proxy.challenge.common import adopt_request_content_id, guarded
from proxy.challenge.playready import DRM, looks_like_playready, parse_playready
from proxy.model import ChallengeInfo, DrmSystem, RequestContext


class PlayReadyInspector:
    """Claims PlayReady challenges: named as such, or XML when undetected."""

    @hookimpl
    def proxy_inspect_challenge(self, ctx: RequestContext) -> ChallengeInfo | None:
        """Parse the challenge when it is a PlayReady one (SOAP, or the key-message wrapper)."""
        drm = ctx.request.drm_system
        body = ctx.request.challenge
        if drm is DrmSystem.PLAYREADY or (drm is None and looks_like_playready(body)):
            return adopt_request_content_id(ctx, guarded(DRM, lambda: parse_playready(body)))
        return None
