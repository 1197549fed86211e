"""The ``backends`` plugin: a policy's backends, in its failover order."""

from __future__ import annotations

from proxy import hookimpl
from proxy.model import Principal, RequestContext
from proxy.policy import EffectivePolicy


class BackendSelectionPlugin:
    """Serves each request from the elected policy's ``backends``."""

    @hookimpl(trylast=True)
    def proxy_select_backends(
        self, ctx: RequestContext, principal: Principal, policy: EffectivePolicy
    ) -> list[str] | None:
        """The policy's backends, or None when it names none."""
        return list(policy.backends) or None
