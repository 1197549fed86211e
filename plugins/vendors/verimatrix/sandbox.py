"""Verimatrix in the sandbox: a fresh Service Access Key, the emulator verifying with it."""

from __future__ import annotations

import base64
import uuid
from typing import Any

import jwt
from aiohttp import web
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from plugins.vendors.verimatrix import emulator
from proxy import UpstreamRequest, VendorSandbox

AUDIENCE = "multidrm-license"


class VerimatrixSandbox(VendorSandbox):
    """A tenant of one sandbox run: a fresh P-256 Service Access Key and its id."""

    def __init__(self) -> None:
        self.key_id = f"sak-{uuid.uuid4().hex[:8]}"
        self.key = ec.generate_private_key(ec.SECP256R1())

    @property
    def pem(self) -> bytes:
        """The private key as unencrypted PKCS#8 PEM."""
        return self.key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )

    def emulator(self) -> web.Application:
        """The license server emulator, verifying tokens with this run's public key."""
        return emulator.make_app(self.key.public_key(), self.key_id, AUDIENCE)

    def backend(self, url: str | None) -> dict[str, Any]:
        """``vendor = "verimatrix"`` signing with this run's key, at the emulator's URLs."""
        assert url is not None, "the verimatrix sandbox runs an emulator"
        return {
            "vendor": "verimatrix",
            "urls": emulator.urls(url),
            "signing_key": "base64:" + base64.b64encode(self.pem).decode(),
            "key_id": self.key_id,
            "audience": AUDIENCE,
            # The sandbox policy has PlayReady rules (field names UNVERIFIED).
            "security_policy_drms": ["widevine", "playready", "fairplay"],
        }

    def policy_message(self, request: UpstreamRequest) -> dict[str, Any]:
        """The claims of the Verimatrix token (its signature is the emulator's to check)."""
        token = request.headers["Authorization"].removeprefix("Bearer ")
        return dict(jwt.decode(token, options={"verify_signature": False, "verify_aud": False}))
