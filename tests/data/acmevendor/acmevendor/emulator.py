"""An emulator of Acme DRM's license service: checks the signature, answers as Acme does."""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json

from aiohttp import web

from proxy.testing.emulator import SERVICE_CERTIFICATE, FaultSwitch, license_for, new_app, record


def _error(status: int, code: str, message: str) -> web.Response:
    return web.json_response({"error": {"code": code, "message": message}}, status=status)


def _reject(request: web.Request, switch: FaultSwitch) -> web.StreamResponse:
    return _error(403, switch.code or "DEVICE_REVOKED", "The device is revoked.")


def make_app(key: bytes) -> web.Application:
    """The emulator of one Acme account (its signing key)."""
    app = new_app(_reject)

    async def license_(request: web.Request) -> web.StreamResponse:
        entry = await record(request)
        expected = hmac.new(key, entry.body, hashlib.sha256).hexdigest()
        if not hmac.compare_digest(request.headers.get("X-Acme-Signature", ""), expected):
            return _error(401, "BAD_SIGNATURE", "The request signature does not verify.")
        try:
            doc = json.loads(entry.body)
            challenge = base64.b64decode(doc["challenge"], validate=True)
        except (ValueError, KeyError, TypeError, binascii.Error):
            return _error(400, "BAD_REQUEST", "The request is not Acme JSON.")
        entry.decoded.update(doc)
        if challenge == b"\x08\x04":
            answer = SERVICE_CERTIFICATE
        else:
            answer, _ = license_for(
                "widevine", {"vendor": "acme", "content_id": doc.get("content_id")}
            )
        return web.json_response({"license": base64.b64encode(answer).decode()})

    app.router.add_post("/license", license_)
    return app
