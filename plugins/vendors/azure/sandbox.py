"""Azure/MK.IO in the sandbox: a fresh token restriction key, the key-delivery emulator checking it."""

from __future__ import annotations

import base64
import os
from typing import Any

from aiohttp import web

from plugins.vendors.azure import emulator
from proxy import VendorSandbox

ISSUER = "https://sts.sandbox.example/"
AUDIENCE = "urn:license-proxy:sandbox"


class AzureSandbox(VendorSandbox):
    """A content key policy of one sandbox run: its token restriction's fresh HS256 key."""

    def __init__(self) -> None:
        self.key = os.urandom(64)

    def emulator(self) -> web.Application:
        """The key-delivery emulator, checking tokens against this run's restriction."""
        return emulator.make_app(ISSUER, AUDIENCE, self.key)

    def backend(self, url: str | None) -> dict[str, Any]:
        """``vendor = "azure"`` minting tokens with this run's key for the emulator's URLs."""
        assert url is not None, "the azure sandbox runs an emulator"
        return {
            "vendor": "azure",
            "urls": emulator.url_templates(url),
            "service_certificate_url": f"{url}/Widevine/",
            "renewal_url": f"{url}/Widevine/",
            "issuer": ISSUER,
            "audience": AUDIENCE,
            "signing_key": "base64:" + base64.b64encode(self.key).decode(),
            # Widevine carries the policy in the template; for PlayReady and FairPlay the
            # content key policy at Azure/MK.IO would (the emulator stands in).
            "widevine_request": "template",
            "policy_enforced_by_vendor": ["playready", "fairplay"],
        }
