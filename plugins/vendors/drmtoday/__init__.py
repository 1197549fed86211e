"""The ``drmtoday`` vendor package: castLabs DRMtoday (Widevine, PlayReady, FairPlay).

- :mod:`~plugins.vendors.drmtoday.settings`: ``[backends.NAME]`` with ``vendor = "drmtoday"``;
- :mod:`~plugins.vendors.drmtoday.crt`: the Customer Rights Token rendered from the policy,
  and what it can carry (:func:`~plugins.vendors.drmtoday.crt.renderings`);
- :mod:`~plugins.vendors.drmtoday.auth`: the upfront ``x-dt-auth-token`` and the custom data;
- :mod:`~plugins.vendors.drmtoday.adapter`: each DRM's framing and DRMtoday's answers;
- :mod:`~plugins.vendors.drmtoday.errors`: ``x-dt-resp-code`` values and their reasons;
- :mod:`~plugins.vendors.drmtoday.emulator`: a license service emulator;
- :mod:`~plugins.vendors.drmtoday.sandbox`: a fresh secret and that emulator for ``--sandbox``;
- :mod:`~plugins.vendors.drmtoday.fairplay`: the ``drmtoday`` FairPlay key URI convention.

All of it is registered by :class:`DrmTodayVendorPlugin`, the package's one entry point.
"""

from __future__ import annotations

from collections.abc import Callable

from plugins.vendors.drmtoday.adapter import DrmTodayAdapter
from plugins.vendors.drmtoday.crt import DRMTODAY_DRMS, VENDOR, renderings
from plugins.vendors.drmtoday.errors import RESP_CODES
from plugins.vendors.drmtoday.fairplay import CONVENTION
from plugins.vendors.drmtoday.settings import DrmTodaySettings
from proxy import VendorSandbox, VendorSpec, hookimpl


def make_sandbox() -> VendorSandbox:
    """DRMtoday's part of the sandbox (imported only when a sandbox runs)."""
    from plugins.vendors.drmtoday.sandbox import DrmTodaySandbox

    return DrmTodaySandbox()


class DrmTodayVendorPlugin:
    """Registers the ``drmtoday`` vendor."""

    @hookimpl
    def proxy_register_vendors(self, register: Callable[[VendorSpec], None]) -> None:
        """Register the castLabs DRMtoday adapter, its sandbox and key URI convention."""
        register(
            VendorSpec(
                name=VENDOR,
                settings=DrmTodaySettings,
                adapter=DrmTodayAdapter,
                drm_systems=DRMTODAY_DRMS,
                description="castLabs DRMtoday: a Customer Rights Token in an upfront "
                "HS256 x-dt-auth-token",
                renderings=renderings,
                sandbox=make_sandbox,
                fairplay_conventions=(CONVENTION,),
            )
        )


__all__ = [
    "RESP_CODES",
    "DrmTodayAdapter",
    "DrmTodaySettings",
    "DrmTodayVendorPlugin",
    "make_sandbox",
]
