"""The ``keyos`` vendor package: BuyDRM KeyOS (Widevine, PlayReady, FairPlay).

- :mod:`~plugins.vendors.keyos.settings`: ``[backends.NAME]`` with ``vendor = "keyos"``;
- :mod:`~plugins.vendors.keyos.authxml`: the Authentication XML rendered from the
  policy, its signature, and what it can carry (:func:`renderings`);
- :mod:`~plugins.vendors.keyos.adapter`: the request (the XML in its header, each
  DRM's framing) and KeyOS's answers;
- :mod:`~plugins.vendors.keyos.authcheck`, :mod:`~plugins.vendors.keyos.emulator`:
  a license server emulator checking the XML as documented;
- :mod:`~plugins.vendors.keyos.sandbox`: a fresh key and that emulator for ``--sandbox``;
- :mod:`~plugins.vendors.keyos.fairplay`: the ``keyos`` FairPlay key URI convention.

All of it is registered by :class:`KeyOSVendorPlugin`, the package's one entry point.
"""

from __future__ import annotations

from collections.abc import Callable

from plugins.vendors.keyos.adapter import VENDOR, KeyOSAdapter
from plugins.vendors.keyos.authxml import renderings
from plugins.vendors.keyos.fairplay import CONVENTION
from plugins.vendors.keyos.settings import KEYOS_DRMS, KeyOSSettings
from proxy import VendorSandbox, VendorSpec, hookimpl


def make_sandbox() -> VendorSandbox:
    """KeyOS's part of the sandbox (imported only when a sandbox runs)."""
    from plugins.vendors.keyos.sandbox import KeyOSSandbox

    return KeyOSSandbox()


class KeyOSVendorPlugin:
    """Registers the ``keyos`` vendor."""

    @hookimpl
    def proxy_register_vendors(self, register: Callable[[VendorSpec], None]) -> None:
        """Register the BuyDRM KeyOS adapter, its sandbox and key URI convention."""
        register(
            VendorSpec(
                name=VENDOR,
                settings=KeyOSSettings,
                adapter=KeyOSAdapter,
                drm_systems=KEYOS_DRMS,
                description="BuyDRM KeyOS: a signed Authentication XML in the customdata header",
                renderings=renderings,
                sandbox=make_sandbox,
                fairplay_conventions=(CONVENTION,),
            )
        )


__all__ = ["KeyOSAdapter", "KeyOSSettings", "KeyOSVendorPlugin", "make_sandbox"]
