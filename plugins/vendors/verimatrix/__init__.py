"""The ``verimatrix`` vendor package: Verimatrix Multi-DRM (cloud) license servers.

- :mod:`~plugins.vendors.verimatrix.settings`: ``[backends.NAME]`` with
  ``vendor = "verimatrix"``, and the Service Access Key;
- :mod:`~plugins.vendors.verimatrix.claims`: the policy as ``security_policy``
  objects and the ``policy`` claim, and what a backend's token can carry;
- :mod:`~plugins.vendors.verimatrix.adapter`: the per-request license-server JWT;
- :mod:`~plugins.vendors.verimatrix.mdrm`: MDRM error codes;
- :mod:`~plugins.vendors.verimatrix.emulator`: a license server emulator;
- :mod:`~plugins.vendors.verimatrix.sandbox`: a fresh key and that emulator for ``--sandbox``;
- :mod:`~plugins.vendors.verimatrix.fairplay`: the ``verimatrix`` FairPlay key URI convention.

All of it is registered by :class:`VerimatrixVendorPlugin`, the package's one entry point.
"""

from __future__ import annotations

from collections.abc import Callable

from plugins.vendors.verimatrix.adapter import VerimatrixAdapter
from plugins.vendors.verimatrix.claims import VERIMATRIX_DRMS, policy_id, renderings
from plugins.vendors.verimatrix.fairplay import CONVENTION
from plugins.vendors.verimatrix.mdrm import MDRM_CODES, VENDOR, read_mdrm
from plugins.vendors.verimatrix.settings import VerimatrixSettings
from proxy import VendorSandbox, VendorSpec, hookimpl


def make_sandbox() -> VendorSandbox:
    """Verimatrix's part of the sandbox (imported only when a sandbox runs)."""
    from plugins.vendors.verimatrix.sandbox import VerimatrixSandbox

    return VerimatrixSandbox()


class VerimatrixVendorPlugin:
    """Registers the ``verimatrix`` vendor."""

    @hookimpl
    def proxy_register_vendors(self, register: Callable[[VendorSpec], None]) -> None:
        """Register the Verimatrix Multi-DRM adapter, its sandbox and key URI convention."""
        register(
            VendorSpec(
                name=VENDOR,
                settings=VerimatrixSettings,
                adapter=VerimatrixAdapter,
                drm_systems=VERIMATRIX_DRMS,
                description="Verimatrix Multi-DRM: a per-request ES256 license-server token",
                renderings=renderings,
                sandbox=make_sandbox,
                fairplay_conventions=(CONVENTION,),
            )
        )


__all__ = [
    "MDRM_CODES",
    "VerimatrixAdapter",
    "VerimatrixSettings",
    "VerimatrixVendorPlugin",
    "make_sandbox",
    "policy_id",
    "read_mdrm",
]
