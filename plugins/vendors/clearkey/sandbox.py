"""ClearKey in the sandbox: a local vendor, so no emulator; a backend deriving keys from a fresh seed."""

from __future__ import annotations

import os
from typing import Any

from proxy import VendorSandbox


class ClearKeySandbox(VendorSandbox):
    """A key seed of one sandbox run (a configured ``clearkey`` backend is kept instead)."""

    def __init__(self) -> None:
        self.seed = os.urandom(16)

    def backend(self, url: str | None) -> dict[str, Any]:
        """``vendor = "clearkey"`` deriving every key id's key from this run's seed."""
        return {"vendor": "clearkey", "key_seed": "hex:" + self.seed.hex()}

    def policy(self, policy: dict[str, Any]) -> dict[str, Any]:
        """The shared policy without the durations a ClearKey license has no means to carry."""
        license_settings = {
            name: value
            for name, value in policy.get("license", {}).items()
            if name in ("can_play", "persistent")
        }
        return {**policy, "license": license_settings}
