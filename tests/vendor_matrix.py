"""The vendor test matrix: every registered vendor, as the installed entry points say.

Read at collection time, so an in-house vendor package installed beside the
project (a ``license_proxy`` entry point) joins every test parametrized from
here with no edit to the tests.
"""

from __future__ import annotations

from functools import cache

from proxy.builder import installed_vendors
from proxy.model import DrmSystem
from proxy.vendors import VendorRegistry, VendorSpec


@cache
def registry() -> VendorRegistry:
    """The installed vendors (the embedded default's ``[plugins]``)."""
    return installed_vendors()


def spec(vendor: str) -> VendorSpec:
    """The registered spec of ``vendor``."""
    return registry().specs[vendor]


def every_vendor() -> list[str]:
    """Every registered vendor, by name."""
    return sorted(registry().specs)


@cache
def _emulated() -> frozenset[str]:
    found = set()
    for name, vendor in registry().specs.items():
        if vendor.sandbox is not None and vendor.sandbox().emulator() is not None:
            found.add(name)
    return frozenset(found)


def emulated(drm: DrmSystem | None = None) -> list[str]:
    """The vendors whose package brings an emulator (those reached over HTTP), serving ``drm``."""
    return [
        name
        for name in every_vendor()
        if name in _emulated() and (drm is None or drm in spec(name).drm_systems)
    ]


def sandboxed() -> list[tuple[str, DrmSystem]]:
    """Each vendor with a sandbox, with each DRM it serves."""
    return [
        (name, drm)
        for name in every_vendor()
        if spec(name).sandbox is not None
        for drm in DrmSystem
        if drm in spec(name).drm_systems
    ]
