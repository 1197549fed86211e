"""A Widevine cloud license service emulator (the ``getlicense`` proxy API).

``POST /cenc/getlicense[/<provider>]`` with JSON ``{request, signature,
signer}``. It checks that ``signer`` is the provider, that ``signature`` is
AES-CBC(key, IV, PKCS#7(SHA-1(the decoded ``request`` bytes))), and the inner
message (``payload`` present, ``allowed_track_types`` and
``content_key_specs`` not both). It answers JSON at HTTP 200 even when it
refuses (``status`` other than ``OK``), as Google's service does.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
from typing import Any

from aiohttp import web
from cryptography.hazmat.primitives import padding
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

from proxy.testing.emulator import (
    SERVICE_CERTIFICATE,
    FaultSwitch,
    new_app,
    record,
    widevine_license,
)


def _refuse(status: str, message: str, internal_status: int | None = None) -> web.Response:
    doc: dict[str, Any] = {"status": status, "status_message": message}
    if internal_status is not None:
        doc["internal_status"] = internal_status
    return web.json_response(doc)


def _reject(request: web.Request, switch: FaultSwitch) -> web.StreamResponse:
    return _refuse(switch.code or "ACCESS_DENIED", "Device certificate revoked.", 127)


def _signature_ok(message: bytes, signature: bytes, key: bytes, iv: bytes) -> bool:
    if len(signature) % 16:
        return False
    decryptor = Cipher(algorithms.AES(key), modes.CBC(iv)).decryptor()
    padded = decryptor.update(signature) + decryptor.finalize()
    unpadder = padding.PKCS7(128).unpadder()
    try:
        digest = unpadder.update(padded) + unpadder.finalize()
    except ValueError:
        return False
    return hmac.compare_digest(digest, hashlib.sha1(message).digest())  # noqa: S324


def make_app(provider: str, key: bytes | None, iv: bytes | None) -> web.Application:
    """The emulator for one provider; ``key``/``iv`` None accepts unsigned requests (UAT)."""
    app = new_app(_reject)

    async def getlicense(request: web.Request) -> web.StreamResponse:
        entry = await record(request)
        if request.content_type != "application/json":
            return web.Response(status=400, text="Content-Type must be application/json")
        try:
            envelope = json.loads(entry.body)
            inner_bytes = base64.b64decode(envelope["request"], validate=True)
            inner = json.loads(inner_bytes)
        except (ValueError, KeyError, TypeError, binascii.Error):
            return _refuse("INVALID_REQUEST", "The request envelope is malformed.")
        if envelope.get("signer") != provider:
            return _refuse("SIGNATURE_FAILED", "Unknown signer.")
        if key is not None and iv is not None:
            try:
                signature = base64.b64decode(envelope.get("signature", ""), validate=True)
            except (binascii.Error, ValueError):
                signature = b""
            if not _signature_ok(inner_bytes, signature, key, iv):
                return _refuse("SIGNATURE_FAILED", "The request signature does not verify.")
        entry.decoded.update(inner)
        if "allowed_track_types" in inner and "content_key_specs" in inner:
            return _refuse("INVALID_REQUEST", "allowed_track_types and content_key_specs together.")
        try:
            payload = base64.b64decode(inner["payload"], validate=True)
        except (KeyError, TypeError, ValueError, binascii.Error):
            return _refuse("INVALID_REQUEST", "payload missing.")
        if payload == b"\x08\x04":
            return web.json_response(
                {"status": "OK", "license": base64.b64encode(SERVICE_CERTIFICATE).decode()}
            )
        if not payload or payload[0] != 0x08:
            return _refuse("INVALID_LICENSE_CHALLENGE", "The challenge does not parse.", 106)
        overrides = inner.get("policy_overrides", {})
        facts = {
            "vendor": "widevine_cloud",
            "drm": "widevine",
            "policy_overrides": overrides,
            "allowed_track_types": inner.get("allowed_track_types"),
            "content_key_specs": inner.get("content_key_specs"),
        }
        persistent = isinstance(overrides, dict) and overrides.get("can_persist")
        return web.json_response(
            {
                "status": "OK",
                "license": base64.b64encode(widevine_license(facts)).decode(),
                "license_metadata": {
                    "content_id": inner.get("content_id", ""),
                    "license_type": "OFFLINE" if persistent else "STREAMING",
                    "request_type": "NEW",
                },
                "security_level": 3,
                "system_id": 4464,
                "make": "emulator",
                "model": "sandbox",
                "platform": "linux",
            }
        )

    app.router.add_post("/cenc/getlicense", getlicense)
    app.router.add_post("/cenc/getlicense/{provider}", getlicense)
    return app


def url(base: str) -> str:
    """The getlicense URL of an emulator served at ``base``."""
    return f"{base}/cenc/getlicense"
