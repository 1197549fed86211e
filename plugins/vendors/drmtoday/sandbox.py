"""DRMtoday in the sandbox: a fresh shared secret, the emulator verifying with it, a backend using it."""

from __future__ import annotations

import json
import os
import uuid
from typing import Any

import jwt
from aiohttp import web

from plugins.vendors.drmtoday import emulator
from proxy import UpstreamRequest, VendorSandbox

MERCHANT = "sandbox-merchant"


class DrmTodaySandbox(VendorSandbox):
    """A merchant of one sandbox run: a fresh 32-byte shared secret and its id."""

    def __init__(self) -> None:
        self.key_id = str(uuid.uuid4())
        self.secret = os.urandom(32)

    def emulator(self) -> web.Application:
        """The DRMtoday emulator, verifying upfront tokens with this run's secret."""
        return emulator.make_app(MERCHANT, {self.key_id: self.secret})

    def backend(self, url: str | None) -> dict[str, Any]:
        """``vendor = "drmtoday"`` signing with this run's secret, at the emulator's URLs."""
        assert url is not None, "the drmtoday sandbox runs an emulator"
        return {
            "vendor": "drmtoday",
            "urls": emulator.urls(url),
            "merchant": MERCHANT,
            "auth_key_id": self.key_id,
            "auth_secret": "hex:" + self.secret.hex(),
        }

    def policy(self, policy: dict[str, Any]) -> dict[str, Any]:
        """The shared policy without what a CRT can't carry: PlayReady track rules, and
        Widevine rules of SD (a quality class DRMtoday is not known to have)."""
        tracks = policy.get("tracks", {})
        tracks.pop("SD", None)
        for rules in tracks.values():
            rules.pop("playready_min_security_level", None)
        return policy

    def policy_message(self, request: UpstreamRequest) -> dict[str, Any]:
        """The customer rights token inside the upfront authorization token."""
        token = jwt.decode(
            request.headers["x-dt-auth-token"],
            options={"verify_signature": False, "verify_aud": False},
        )
        return dict(json.loads(token["crt"]))
