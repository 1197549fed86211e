"""The ``ezdrm`` vendor package: EZDRM's license services (Widevine, PlayReady, FairPlay).

- :mod:`~plugins.vendors.ezdrm.settings`: ``[backends.NAME]`` with ``vendor = "ezdrm"``
  (the per-DRM ``pX`` profiles, by policy too);
- :mod:`~plugins.vendors.ezdrm.adapter`: the request (the profile in the URL, the
  raw challenge) and EZDRM's answers;
- :mod:`~plugins.vendors.ezdrm.emulator`: a license service emulator;
- :mod:`~plugins.vendors.ezdrm.sandbox`: fresh profiles and that emulator for ``--sandbox``;
- :mod:`~plugins.vendors.ezdrm.fairplay`: the ``ezdrm`` FairPlay key URI convention.

All of it is registered by :class:`EzdrmVendorPlugin`, the package's one entry point.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from plugins.vendors.ezdrm.adapter import EZDRM_DRMS, RENDERINGS, VENDOR, EzdrmAdapter
from plugins.vendors.ezdrm.fairplay import CONVENTION
from plugins.vendors.ezdrm.settings import EzdrmSettings
from proxy import ConfigContext, VendorSandbox, VendorSpec, hookimpl


def make_sandbox() -> VendorSandbox:
    """EZDRM's part of the sandbox (imported only when a sandbox runs)."""
    from plugins.vendors.ezdrm.sandbox import EzdrmSandbox

    return EzdrmSandbox()


class EzdrmVendorPlugin:
    """Registers the ``ezdrm`` vendor, and checks that ``policy_px`` names real policies."""

    @hookimpl
    def proxy_register_vendors(self, register: Callable[[VendorSpec], None]) -> None:
        """Register the EZDRM adapter, its sandbox and key URI convention."""
        register(
            VendorSpec(
                name=VENDOR,
                settings=EzdrmSettings,
                adapter=EzdrmAdapter,
                drm_systems=EZDRM_DRMS,
                description="EZDRM: the per-DRM pX profile in the URL, the raw challenge",
                renderings=RENDERINGS,
                sandbox=make_sandbox,
                fairplay_conventions=(CONVENTION,),
            )
        )

    @hookimpl
    def proxy_configure(self, config: ConfigContext) -> None:
        """A ``policy_px`` entry must name a configured policy: a misspelt name would leave
        its policy on the backend's default profile, whose rules may be looser."""
        backends = config.get("backends", {})
        policies = config.get("policies", [])
        if not isinstance(backends, dict) or not isinstance(policies, list):
            return
        names = {p.get("name") for p in policies if isinstance(p, dict)}
        for backend, section in backends.items():
            if not isinstance(section, dict) or section.get("vendor") != VENDOR:
                continue
            mapped: Any = section.get("policy_px", {})
            for policy in mapped if isinstance(mapped, dict) else ():
                if policy not in names:
                    config.error(
                        f"backends.{backend}.policy_px.{policy}",
                        f"no policy is named {policy!r}",
                    )


__all__ = ["EzdrmAdapter", "EzdrmSettings", "EzdrmVendorPlugin", "make_sandbox"]
