"""DoveRunner in the sandbox: a fresh site with fresh keys, the emulator holding them, a backend using them."""

from __future__ import annotations

import base64
import json
import secrets
import string
from typing import Any

from aiohttp import web

from plugins.vendors.doverunner import emulator
from plugins.vendors.doverunner.token import decrypt_policy
from proxy import UpstreamRequest, VendorSandbox

_ALPHABET = string.ascii_letters + string.digits


def console_key() -> str:
    """A fresh 32-character key of the kind DoveRunner's console shows."""
    return "".join(secrets.choice(_ALPHABET) for _ in range(32))


class DoveRunnerSandbox(VendorSandbox):
    """A site of one sandbox run: a fresh site key and access key."""

    def __init__(self) -> None:
        self.site_id = "SBOX"
        self.site_key = console_key()
        self.access_key = console_key()

    def emulator(self) -> web.Application:
        """The DoveRunner emulator, checking tokens with this run's keys."""
        return emulator.make_app(self.site_id, self.site_key, self.access_key)

    def backend(self, url: str | None) -> dict[str, Any]:
        """``vendor = "doverunner"`` with this run's site and keys, at the emulator's URL."""
        assert url is not None, "the doverunner sandbox runs an emulator"
        return {
            "vendor": "doverunner",
            "url": emulator.url(url),
            "site_id": self.site_id,
            "site_key": "base64:" + _b64(self.site_key),
            "access_key": "base64:" + _b64(self.access_key),
        }

    def policy_message(self, request: UpstreamRequest) -> dict[str, Any]:
        """The policy JSON v2, decrypted with this run's site key."""
        token = json.loads(base64.b64decode(request.headers["pallycon-customdata-v2"]))
        return dict(json.loads(decrypt_policy(token["policy"], self.site_key.encode())))


def _b64(text: str) -> str:
    return base64.b64encode(text.encode("ascii")).decode("ascii")
