"""The ``acme`` vendor package (Acme DRM, Widevine): registered by :class:`AcmeVendorPlugin`.

- :mod:`acmevendor.adapter`: the settings and the adapter;
- :mod:`acmevendor.emulator`: an emulator of Acme's license service;
- :mod:`acmevendor.sandbox`: fresh keys and that emulator for ``--sandbox``.

It declares no rendering: no policy rule reaches Acme.
"""

from __future__ import annotations

from collections.abc import Callable

from acmevendor.adapter import AcmeAdapter, AcmeSettings
from proxy import DrmSystem, VendorSandbox, VendorSpec, hookimpl


def make_sandbox() -> VendorSandbox:
    """Acme's part of the sandbox (imported only when a sandbox runs)."""
    from acmevendor.sandbox import AcmeSandbox

    return AcmeSandbox()


class AcmeVendorPlugin:
    """Registers the ``acme`` vendor."""

    @hookimpl
    def proxy_register_vendors(self, register: Callable[[VendorSpec], None]) -> None:
        """Register the Acme DRM adapter and its sandbox."""
        register(
            VendorSpec(
                name="acme",
                settings=AcmeSettings,
                adapter=AcmeAdapter,
                drm_systems=frozenset({DrmSystem.WIDEVINE}),
                description="Acme DRM: signed JSON license requests (an in-house test vendor)",
                sandbox=make_sandbox,
            )
        )
