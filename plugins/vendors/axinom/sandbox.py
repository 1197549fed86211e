"""Axinom in the sandbox: a fresh communication key, the emulator holding it, a backend using it."""

from __future__ import annotations

import base64
import os
import uuid
from typing import Any

import jwt
from aiohttp import web

from plugins.vendors.axinom import emulator
from proxy import UpstreamRequest, VendorSandbox


class AxinomSandbox(VendorSandbox):
    """A tenant of one sandbox run: a fresh communication key id and 32-byte key."""

    def __init__(self) -> None:
        self.com_key_id = str(uuid.uuid4())
        self.com_key = os.urandom(32)

    def emulator(self) -> web.Application:
        """The License Service emulator, checking messages signed with this run's key."""
        return emulator.make_app(self.com_key_id, base64.b64encode(self.com_key).decode())

    def backend(self, url: str | None) -> dict[str, Any]:
        """``vendor = "axinom"`` with this run's key and the emulator's per-DRM URLs."""
        assert url is not None, "the axinom sandbox runs an emulator"
        return {
            "vendor": "axinom",
            "com_key_id": self.com_key_id,
            "com_key": "base64:" + base64.b64encode(self.com_key).decode(),
            "urls": emulator.urls(url),
        }

    def policy_message(self, request: UpstreamRequest) -> dict[str, Any]:
        """The Entitlement Message inside the License Service Message."""
        token = request.headers["X-AxDRM-Message"]
        return dict(jwt.decode(token, self.com_key, algorithms=["HS256"])["message"])
