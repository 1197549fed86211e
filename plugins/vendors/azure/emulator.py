"""An Azure Media Services / MK.IO key-delivery emulator.

``POST /{Widevine|PlayReady|FairPlay}/?kid=<GUID>`` with the token in
``Authorization: Bearer …`` or the ``token`` query parameter. It checks the
token restriction as Azure does: signature with the configured key (HS256
symmetric or RS256), ``iss`` and ``aud`` equal to the configured ones, then
the required claims, ``contentkeyidentifier`` equal to the requested key id
among them; any failure is HTTP 401. FairPlay is the form ``spc=<base64>``
in and ``<ckc>base64</ckc>`` out; Widevine accepts the raw challenge or the
JSON license template with the challenge as ``payload``.
"""

from __future__ import annotations

import base64
import binascii
import json
from typing import Any

import jwt
from aiohttp import web

from proxy.testing.emulator import (
    SERVICE_CERTIFICATE,
    FaultSwitch,
    license_for,
    new_app,
    playready_fault,
    record,
)

CONTENT_KEY_CLAIM = "urn:microsoft:azure:mediaservices:contentkeyidentifier"
UNAUTHORIZED = "No token present in authorization header or URL."


def _reject(request: web.Request, switch: FaultSwitch) -> web.StreamResponse:
    if request.match_info.get("drm") == "PlayReady":
        return web.Response(
            status=500,
            body=playready_fault(switch.code or "0x8004C065", "Device certificate revoked."),
            content_type="text/xml",
        )
    return web.Response(status=switch.status if switch.status < 500 else 403, text="Forbidden")


def make_app(
    issuer: str,
    audience: str,
    verification_key: Any,
    *,
    algorithm: str = "HS256",
    required_claims: dict[str, Any] | None = None,
) -> web.Application:
    """The emulator for one token restriction: issuer, audience, key, required claims."""
    app = new_app(_reject)
    required = dict(required_claims or {})

    async def acquire(request: web.Request) -> web.StreamResponse:
        drm = request.match_info["drm"]
        entry = await record(request)
        authorization = request.headers.get("Authorization", "")
        token = authorization[7:] if authorization.startswith("Bearer ") else None
        token = token or request.query.get("token")
        if not token:
            return web.Response(status=401, text=UNAUTHORIZED)
        try:
            claims = jwt.decode(
                token,
                verification_key,
                algorithms=[algorithm],
                audience=audience,
                issuer=issuer,
                options={"require": ["iss", "aud", "exp"]},
            )
        except jwt.PyJWTError as exc:
            return web.Response(status=401, text=f"Token validation failed: {type(exc).__name__}")
        kid = request.query.get("kid")
        if kid and claims.get(CONTENT_KEY_CLAIM, "").lower() != kid.lower():
            return web.Response(status=401, text="Required claim contentkeyidentifier mismatch.")
        for name, value in required.items():
            if claims.get(name) != value:
                return web.Response(status=401, text=f"Required claim {name} missing or wrong.")
        entry.decoded.update(claims)
        facts: dict[str, Any] = {"vendor": "azure", "drm": drm.lower(), "kid": kid}
        body = entry.body
        if drm == "FairPlay":
            form = await request.post()
            try:
                spc = base64.b64decode(str(form.get("spc", "")), validate=True)
            except (binascii.Error, ValueError):
                spc = b""
            if not spc:
                return web.Response(status=400, text="spc missing")
            facts["asset_id"] = form.get("assetId")
            ckc, _ = license_for("fairplay", facts)
            return web.Response(
                text=f"<ckc>{base64.b64encode(ckc).decode()}</ckc>", content_type="text/plain"
            )
        if drm == "Widevine" and request.content_type == "application/json":
            try:
                template = json.loads(body)
                body = base64.b64decode(template["payload"], validate=True)
            except (ValueError, KeyError, TypeError, binascii.Error):
                return web.Response(status=400, text="The license template is malformed.")
            facts["template"] = {k: v for k, v in template.items() if k != "payload"}
        if not body:
            return web.Response(status=400, text="The license request body is empty.")
        if drm == "Widevine" and body == b"\x08\x04":
            return web.Response(body=SERVICE_CERTIFICATE, content_type="application/octet-stream")
        if drm == "PlayReady" and b"AcquireLicense" not in body:
            return web.Response(
                status=500,
                body=playready_fault("0x8004C601", "Invalid license request."),
                content_type="text/xml",
            )
        license_bytes, content_type = license_for(drm.lower(), facts)
        response = web.Response(body=license_bytes)
        response.headers["Content-Type"] = content_type
        return response

    app.router.add_post("/{drm:Widevine|PlayReady|FairPlay}/", acquire)
    return app


def url_templates(base: str) -> dict[str, str]:
    """The per-DRM URL templates (``{kid}``) of an emulator served at ``base``."""
    return {
        "widevine": f"{base}/Widevine/?kid={{kid}}",
        "playready": f"{base}/PlayReady/?kid={{kid}}",
        "fairplay": f"{base}/FairPlay/?kid={{kid}}",
    }
