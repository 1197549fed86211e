"""Vendor emulators: aiohttp apps that speak each vendor's documented format.

One module per vendor (:mod:`~proxy.emulators.axinom`,
:mod:`~proxy.emulators.verimatrix`, :mod:`~proxy.emulators.azure`,
:mod:`~proxy.emulators.widevine_cloud`), each with a ``make_app`` factory;
:mod:`proxy.testing.emulator` holds the fault switch and the serving helpers,
:mod:`proxy.testing.sandbox` runs them all for ``license-proxy serve --sandbox``.
"""

from proxy.testing.emulator import (
    FAULT_MODES,
    FaultSwitch,
    Received,
    RunningEmulator,
    license_facts,
    serving,
    start_emulator,
)

__all__ = [
    "FAULT_MODES",
    "FaultSwitch",
    "Received",
    "RunningEmulator",
    "license_facts",
    "serving",
    "start_emulator",
]
