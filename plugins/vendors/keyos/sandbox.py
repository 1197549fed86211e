"""KeyOS in the sandbox: a fresh signing key and Key Hash, the emulator verifying with it."""

from __future__ import annotations

import base64
import os
import time
from typing import Any

from aiohttp import web
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from plugins.vendors.keyos import emulator
from plugins.vendors.keyos.authcheck import check_data, read_authentication_xml
from proxy import UpstreamRequest, VendorSandbox


class KeyOSSandbox(VendorSandbox):
    """A tenant of one sandbox run: a fresh RSA 2048 signing key and its Key Hash."""

    def __init__(self) -> None:
        self.key = rsa.generate_private_key(public_exponent=0x10001, key_size=2048)
        self.key_hash = os.urandom(16).hex()

    @property
    def pem(self) -> bytes:
        """The signing key as unencrypted PKCS#8 PEM (what BuyDRM's console pairs with)."""
        return self.key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )

    def emulator(self) -> web.Application:
        """The license server emulator, knowing this run's public key by its Key Hash."""
        return emulator.make_app({self.key_hash: self.key.public_key()})

    def backend(self, url: str | None) -> dict[str, Any]:
        """``vendor = "keyos"`` signing with this run's key, at the emulator's URLs."""
        assert url is not None, "the keyos sandbox runs an emulator"
        return {
            "vendor": "keyos",
            "urls": emulator.urls(url),
            "signing_key": "base64:" + base64.b64encode(self.pem).decode(),
            "rsa_pub_key_id": self.key_hash,
        }

    def policy(self, policy: dict[str, Any]) -> dict[str, Any]:
        """The shared rental without its durations: the Authentication XML carries a Widevine
        LicenseDuration only, and no PlayReady persistence (docs/vendors.md)."""
        policy["license"] = {"can_play": True}
        return policy

    def policy_message(self, request: UpstreamRequest) -> dict[str, Any]:
        """The facts of the authentication XML, checked as the emulator checks them."""
        _, data, _ = read_authentication_xml(request.headers["customdata"])
        facts, problems = check_data(data, time.time())
        if problems:
            raise ValueError("; ".join(problems))
        return facts
