"""EZDRM in the sandbox: fresh ``pX`` profiles, the emulator knowing them, a backend using them."""

from __future__ import annotations

import os
from typing import Any

from aiohttp import web

from plugins.vendors.ezdrm import emulator
from proxy import UpstreamRequest, VendorSandbox


def _profile() -> str:
    """A fresh ``pX``: 6 upper-case hex characters, as EZDRM's are."""
    return os.urandom(3).hex().upper()


class EzdrmSandbox(VendorSandbox):
    """An account of one sandbox run: a Widevine and a PlayReady profile of its own."""

    def __init__(self) -> None:
        self.px = {"widevine": _profile(), "playready": _profile()}

    def emulator(self) -> web.Application:
        """The license service emulator, knowing this run's profiles."""
        return emulator.make_app({drm: {px} for drm, px in self.px.items()})

    def backend(self, url: str | None) -> dict[str, Any]:
        """``vendor = "ezdrm"`` with this run's profiles at the emulator's URLs. The profile
        at EZDRM holds the license rules, so the backend says the vendor enforces them."""
        assert url is not None, "the ezdrm sandbox runs an emulator"
        return {
            "vendor": "ezdrm",
            "urls": emulator.urls(url),
            "px": dict(self.px),
            "policy_enforced_by_vendor": True,
        }

    def policy_message(self, request: UpstreamRequest) -> dict[str, Any]:
        """EZDRM carries no policy: the URL (its profile parameter) is what selects one."""
        return {"url": request.url, "body": request.body, "headers": request.headers}
