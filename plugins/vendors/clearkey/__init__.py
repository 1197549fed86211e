"""The ``clearkey`` vendor package: a local backend that issues W3C ClearKey licenses itself.

- :mod:`~plugins.vendors.clearkey.settings`: ``[backends.NAME]`` with
  ``vendor = "clearkey"`` (inline keys, a key file or a seed);
- :mod:`~plugins.vendors.clearkey.adapter`: the key store and the JSON Web Key Set
  it answers with;
- :mod:`~plugins.vendors.clearkey.sandbox`: a backend with a fresh seed for
  ``--sandbox`` (a local vendor runs no emulator).

All of it is registered by :class:`ClearKeyVendorPlugin`, the package's one entry point.
"""

from __future__ import annotations

from collections.abc import Callable

from plugins.vendors.clearkey.adapter import RENDERING, ClearKeyAdapter, derive_key
from plugins.vendors.clearkey.settings import ClearKeySettings
from proxy import DrmSystem, VendorSandbox, VendorSpec, hookimpl


def make_sandbox() -> VendorSandbox:
    """ClearKey's part of the sandbox."""
    from plugins.vendors.clearkey.sandbox import ClearKeySandbox

    return ClearKeySandbox()


class ClearKeyVendorPlugin:
    """Registers the ``clearkey`` vendor."""

    @hookimpl
    def proxy_register_vendors(self, register: Callable[[VendorSpec], None]) -> None:
        """Register the local ClearKey backend and its sandbox."""
        register(
            VendorSpec(
                name="clearkey",
                settings=ClearKeySettings,
                adapter=ClearKeyAdapter,
                drm_systems=frozenset({DrmSystem.CLEARKEY}),
                description="W3C ClearKey licenses issued locally from inline keys, a file or a seed",
                renderings={DrmSystem.CLEARKEY: RENDERING},
                sandbox=make_sandbox,
            )
        )


__all__ = [
    "ClearKeyAdapter",
    "ClearKeySettings",
    "ClearKeyVendorPlugin",
    "derive_key",
    "make_sandbox",
]
