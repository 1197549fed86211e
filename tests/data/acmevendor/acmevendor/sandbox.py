"""Acme in the sandbox: a fresh signing key and the emulator checking it."""

from __future__ import annotations

import os
from typing import Any

from aiohttp import web

from acmevendor.emulator import make_app
from proxy import VendorSandbox


class AcmeSandbox(VendorSandbox):
    """An Acme account of one sandbox run."""

    def __init__(self) -> None:
        self.key = os.urandom(32)

    def emulator(self) -> web.Application:
        """The license service emulator, checking signatures with this run's key."""
        return make_app(self.key)

    def backend(self, url: str | None) -> dict[str, Any]:
        """``vendor = "acme"`` at the emulator; Acme's account (the emulator) enforces the policy."""
        return {
            "vendor": "acme",
            "url": f"{url}/license",
            "key": "hex:" + self.key.hex(),
            "policy_enforced_by_vendor": True,
        }
