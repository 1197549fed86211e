"""The ``axinom`` vendor package: Axinom DRM's License Service (Widevine, PlayReady, FairPlay).

- :mod:`~plugins.vendors.axinom.settings`: ``[backends.NAME]`` with ``vendor = "axinom"``;
- :mod:`~plugins.vendors.axinom.entitlement`: the Entitlement Message v2 rendered
  from the policy, and what it can carry (:data:`RENDERINGS`);
- :mod:`~plugins.vendors.axinom.adapter`: the signed License Service Message and
  Axinom's answers;
- :mod:`~plugins.vendors.axinom.emulator`: a License Service emulator;
- :mod:`~plugins.vendors.axinom.sandbox`: fresh keys and that emulator for ``--sandbox``;
- :mod:`~plugins.vendors.axinom.fairplay`: the ``axinom`` FairPlay key URI convention.

All of it is registered by :class:`AxinomVendorPlugin`, the package's one entry point.
"""

from __future__ import annotations

from collections.abc import Callable

from plugins.vendors.axinom.adapter import VENDOR, AxinomAdapter
from plugins.vendors.axinom.entitlement import AXINOM_DRMS, RENDERINGS
from plugins.vendors.axinom.fairplay import CONVENTION
from plugins.vendors.axinom.settings import AxinomSettings
from proxy import VendorSandbox, VendorSpec, hookimpl


def make_sandbox() -> VendorSandbox:
    """Axinom's part of the sandbox (imported only when a sandbox runs)."""
    from plugins.vendors.axinom.sandbox import AxinomSandbox

    return AxinomSandbox()


class AxinomVendorPlugin:
    """Registers the ``axinom`` vendor."""

    @hookimpl
    def proxy_register_vendors(self, register: Callable[[VendorSpec], None]) -> None:
        """Register the Axinom DRM License Service adapter, its sandbox and key URI convention."""
        register(
            VendorSpec(
                name=VENDOR,
                settings=AxinomSettings,
                adapter=AxinomAdapter,
                drm_systems=AXINOM_DRMS,
                description="Axinom DRM: Entitlement Message v2 in a signed License Service Message",
                renderings=RENDERINGS,
                sandbox=make_sandbox,
                fairplay_conventions=(CONVENTION,),
            )
        )


__all__ = ["AxinomAdapter", "AxinomSettings", "AxinomVendorPlugin", "make_sandbox"]
