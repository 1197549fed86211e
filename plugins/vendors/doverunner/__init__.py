"""The ``doverunner`` vendor package: DoveRunner Multi-DRM, formerly PallyCon (Widevine,
PlayReady, FairPlay).

- :mod:`~plugins.vendors.doverunner.settings`: ``[backends.NAME]`` with ``vendor = "doverunner"``;
- :mod:`~plugins.vendors.doverunner.policy`: the policy JSON v2 rendered from the policy, and
  what it can carry (:func:`~plugins.vendors.doverunner.policy.renderings`);
- :mod:`~plugins.vendors.doverunner.token`: the encrypted policy, the hash, the license token;
- :mod:`~plugins.vendors.doverunner.adapter`: each DRM's framing and DoveRunner's answers;
- :mod:`~plugins.vendors.doverunner.errors`: ``errorCode`` values and their reasons;
- :mod:`~plugins.vendors.doverunner.emulator`: a license service emulator;
- :mod:`~plugins.vendors.doverunner.sandbox`: a fresh site and that emulator for ``--sandbox``.

All of it is registered by :class:`DoveRunnerVendorPlugin`, the package's one entry point.
"""

from __future__ import annotations

from collections.abc import Callable

from plugins.vendors.doverunner.adapter import DoveRunnerAdapter
from plugins.vendors.doverunner.errors import ERROR_CODES
from plugins.vendors.doverunner.policy import DOVERUNNER_DRMS, VENDOR, renderings
from plugins.vendors.doverunner.settings import DoveRunnerSettings
from proxy import VendorSandbox, VendorSpec, hookimpl


def make_sandbox() -> VendorSandbox:
    """DoveRunner's part of the sandbox (imported only when a sandbox runs)."""
    from plugins.vendors.doverunner.sandbox import DoveRunnerSandbox

    return DoveRunnerSandbox()


class DoveRunnerVendorPlugin:
    """Registers the ``doverunner`` vendor."""

    @hookimpl
    def proxy_register_vendors(self, register: Callable[[VendorSpec], None]) -> None:
        """Register the DoveRunner (PallyCon) adapter and its sandbox."""
        register(
            VendorSpec(
                name=VENDOR,
                settings=DoveRunnerSettings,
                adapter=DoveRunnerAdapter,
                drm_systems=DOVERUNNER_DRMS,
                description="DoveRunner (PallyCon): an AES-256 encrypted policy v2 in a "
                "hashed pallycon-customdata-v2 token",
                renderings=renderings,
                sandbox=make_sandbox,
            )
        )


__all__ = [
    "ERROR_CODES",
    "DoveRunnerAdapter",
    "DoveRunnerSettings",
    "DoveRunnerVendorPlugin",
    "make_sandbox",
]
