"""Google's Widevine cloud in the sandbox: a fresh provider key, the getlicense emulator checking it."""

from __future__ import annotations

import base64
import json
import os
from typing import Any

from aiohttp import web

from plugins.vendors.widevine_cloud import emulator
from proxy import UpstreamRequest, VendorSandbox

PROVIDER = "sandbox_provider"


class WidevineCloudSandbox(VendorSandbox):
    """A provider of one sandbox run: its fresh AES key and IV."""

    def __init__(self) -> None:
        self.key = os.urandom(32)
        self.iv = os.urandom(16)

    def emulator(self) -> web.Application:
        """The getlicense emulator, checking signatures with this run's key."""
        return emulator.make_app(PROVIDER, self.key, self.iv)

    def backend(self, url: str | None) -> dict[str, Any]:
        """``vendor = "widevine_cloud"`` signing with this run's key, at the emulator's URL."""
        assert url is not None, "the widevine_cloud sandbox runs an emulator"
        return {
            "vendor": "widevine_cloud",
            "url": emulator.url(url),
            "provider": PROVIDER,
            "signing_key": "hex:" + self.key.hex(),
            "signing_iv": "hex:" + self.iv.hex(),
        }

    def policy_message(self, request: UpstreamRequest) -> dict[str, Any]:
        """The inner GetLicense request inside the signed envelope."""
        return dict(json.loads(base64.b64decode(json.loads(request.body)["request"])))
