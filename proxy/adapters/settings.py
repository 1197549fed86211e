"""What every ``[backends.NAME]`` section has; each vendor's settings model extends it."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import replace

from pydantic import Field

from proxy.adapters.rendering import Rendering, renders_nothing
from proxy.drm import DrmSystem
from proxy.fields import Duration, StrictModel


class BackendSettings(StrictModel):
    """Settings every ``[backends.NAME]`` section has; adapters extend this model."""

    vendor: str
    description: str = ""
    timeout: Duration = 10.0
    """Total seconds for one upstream call (bounded by the caller's deadline)."""
    connect_timeout: Duration = 3.0
    max_response_bytes: int = Field(default=4 * 1024 * 1024, gt=0)
    policy_enforced_by_vendor: bool | list[DrmSystem] = False
    """The vendor account's own configuration (a content key policy at Azure/MK.IO, a
    policy registered with the vendor) enforces the policy's rules for these DRMs
    (``true``: every DRM the vendor serves). Rules the adapter can't render are then
    accepted at start; a rule a trusted claim tightens is still refused per request."""

    def vendor_enforced(self, served: Iterable[DrmSystem]) -> frozenset[DrmSystem]:
        """The DRMs of ``served`` whose policy rules the vendor account enforces."""
        if self.policy_enforced_by_vendor is True:
            return frozenset(served)
        if self.policy_enforced_by_vendor is False:
            return frozenset()
        return frozenset(served) & frozenset(self.policy_enforced_by_vendor)

    def effective_renderings(
        self, vendor: str, declared: Mapping[DrmSystem, Rendering], served: Iterable[DrmSystem]
    ) -> dict[DrmSystem, Rendering]:
        """What this backend renders for each DRM of ``served``: the vendor's ``declared``
        rendering (nothing where it declares none), handed to the vendor account for the
        DRMs ``policy_enforced_by_vendor`` names."""
        enforced = self.vendor_enforced(served)
        found = {}
        for drm in served:
            rendering = declared.get(drm) or renders_nothing(vendor, drm)
            if drm in enforced:
                rendering = replace(rendering, enforced_by="vendor")
            found[drm] = rendering
        return found


__all__ = ["BackendSettings"]
