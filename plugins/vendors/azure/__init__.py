"""The ``azure`` vendor package: Azure Media Services key delivery, and MK.IO, which keeps its API.

- :mod:`~plugins.vendors.azure.settings`: ``[backends.NAME]`` with ``vendor = "azure"``;
- :mod:`~plugins.vendors.azure.template`: the Widevine license template (seed 000),
  and what raw and template requests carry;
- :mod:`~plugins.vendors.azure.adapter`: URL templates, the minted (or passed-on)
  bearer token, FairPlay forms and ``<ckc>`` answers;
- :mod:`~plugins.vendors.azure.emulator`: a key-delivery emulator;
- :mod:`~plugins.vendors.azure.sandbox`: a fresh key and that emulator for ``--sandbox``.

FairPlay key URIs follow the core's ``generic`` convention. All of it is
registered by :class:`AzureVendorPlugin`, the package's one entry point.
"""

from __future__ import annotations

from collections.abc import Callable

from plugins.vendors.azure.adapter import CONTENT_KEY_CLAIM, AzureAdapter
from plugins.vendors.azure.settings import AzureSettings
from plugins.vendors.azure.template import AZURE_DRMS, VENDOR, renderings, widevine_template
from proxy import VendorSandbox, VendorSpec, hookimpl


def make_sandbox() -> VendorSandbox:
    """Azure's part of the sandbox (imported only when a sandbox runs)."""
    from plugins.vendors.azure.sandbox import AzureSandbox

    return AzureSandbox()


class AzureVendorPlugin:
    """Registers the ``azure`` vendor (Azure Media Services and MK.IO)."""

    @hookimpl
    def proxy_register_vendors(self, register: Callable[[VendorSpec], None]) -> None:
        """Register the Azure Media Services / MK.IO key-delivery adapter and its sandbox."""
        register(
            VendorSpec(
                name=VENDOR,
                settings=AzureSettings,
                adapter=AzureAdapter,
                drm_systems=AZURE_DRMS,
                description="Azure Media Services / MK.IO key delivery with a minted bearer token",
                renderings=renderings,
                sandbox=make_sandbox,
            )
        )


__all__ = [
    "CONTENT_KEY_CLAIM",
    "AzureAdapter",
    "AzureSettings",
    "AzureVendorPlugin",
    "make_sandbox",
    "widevine_template",
]
