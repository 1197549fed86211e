"""The ``widevine_cloud`` vendor package: Google's Widevine license proxy API (``getlicense``).

- :mod:`~plugins.vendors.widevine_cloud.settings`: ``[backends.NAME]`` with
  ``vendor = "widevine_cloud"``;
- :mod:`~plugins.vendors.widevine_cloud.adapter`: signed ``getlicense`` requests
  and their JSON answers;
- :mod:`~plugins.vendors.widevine_cloud.emulator`: a ``getlicense`` emulator;
- :mod:`~plugins.vendors.widevine_cloud.sandbox`: a fresh provider key and that
  emulator for ``--sandbox``.

All of it is registered by :class:`WidevineCloudVendorPlugin`, the package's one entry point.
"""

from __future__ import annotations

from collections.abc import Callable

from plugins.vendors.widevine_cloud.adapter import (
    RENDERINGS,
    VENDOR,
    WidevineCloudAdapter,
    sign_request,
)
from plugins.vendors.widevine_cloud.settings import WidevineCloudSettings
from proxy import DrmSystem, VendorSandbox, VendorSpec, hookimpl


def make_sandbox() -> VendorSandbox:
    """The Widevine cloud's part of the sandbox (imported only when a sandbox runs)."""
    from plugins.vendors.widevine_cloud.sandbox import WidevineCloudSandbox

    return WidevineCloudSandbox()


class WidevineCloudVendorPlugin:
    """Registers the ``widevine_cloud`` vendor."""

    @hookimpl
    def proxy_register_vendors(self, register: Callable[[VendorSpec], None]) -> None:
        """Register Google's Widevine license proxy API adapter and its sandbox."""
        register(
            VendorSpec(
                name=VENDOR,
                settings=WidevineCloudSettings,
                adapter=WidevineCloudAdapter,
                drm_systems=frozenset({DrmSystem.WIDEVINE}),
                description="Google Widevine cloud license service, signed getlicense requests",
                renderings=RENDERINGS,
                sandbox=make_sandbox,
            )
        )


__all__ = [
    "WidevineCloudAdapter",
    "WidevineCloudSettings",
    "WidevineCloudVendorPlugin",
    "make_sandbox",
    "sign_request",
]
