"""An Axinom DRM License Service emulator.

``POST /{widevine|playready|fairplay}/AcquireLicense`` with the raw challenge
and a License Service Message in ``X-AxDRM-Message`` (or ``AxDrmMessage``),
exactly one of them. It checks the HS256 signature with the communication
key, the envelope (``version`` 1, ``com_key_id``, ``expiration_date``), the
Entitlement Message v2 (type, version, inline GUID key ids, every named usage
policy defined; a Widevine renewal or release may name no key), then issues an
emulated license carrying what it understood.
Errors go in ``X-AxDRM-ErrorMessage`` with 400/403, and as HTTP 500 with a
SOAP fault for PlayReady, as Axinom does.
"""

from __future__ import annotations

import base64
import uuid
from datetime import UTC, datetime
from typing import Any

import jwt
from aiohttp import web

from proxy import RequestType
from proxy.testing.emulator import (
    SERVICE_CERTIFICATE,
    STATE,
    FaultSwitch,
    license_for,
    new_app,
    playready_fault,
    record,
    widevine_request_type,
)

IDENTITY = {
    "widevine": "Axinom DRM - Widevine API",
    "playready": "Axinom DRM - PlayReady API",
    "fairplay": "Axinom DRM - FairPlay API",
}
VERSION = "6.24.1-emulator"


class _Refused(Exception):
    def __init__(self, status: int, message: str, fault_code: str = "0x8004C601") -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.fault_code = fault_code


def _error(drm: str, status: int, message: str, fault_code: str = "0x8004C601") -> web.Response:
    headers = {"X-AxDRM-ErrorMessage": message, **_info_headers(drm)}
    if drm == "playready":
        return web.Response(
            status=500,
            body=playready_fault(fault_code, message),
            content_type="text/xml",
            charset="utf-8",
            headers=headers,
        )
    return web.Response(status=status, text=message, headers=headers)


def _info_headers(drm: str) -> dict[str, str]:
    return {
        "X-AxDRM-Identity": IDENTITY.get(drm, "Axinom DRM"),
        "X-AxDRM-Server": "emulator-0",
        "X-AxDRM-Version": VERSION,
    }


def _reject(request: web.Request, switch: FaultSwitch) -> web.StreamResponse:
    drm = request.match_info.get("drm", "widevine")
    message = switch.code or "License denied: the client device's certificate is revoked."
    return _error(drm, switch.status if switch.status < 500 else 403, message, "0x8004C065")


def _check_envelope(token: str, com_key_id: str, com_key: bytes) -> dict[str, Any]:
    try:
        header = jwt.get_unverified_header(token)
    except jwt.PyJWTError:
        raise _Refused(400, "The License Service Message is not a valid JWT.") from None
    if header.get("alg") != "HS256":
        raise _Refused(400, "The License Service Message must be signed with HS256.")
    try:
        envelope = jwt.decode(token, com_key, algorithms=["HS256"], options={"verify_exp": False})
    except jwt.InvalidSignatureError:
        raise _Refused(400, "License Service Message signature verification failed.") from None
    except jwt.PyJWTError:
        raise _Refused(400, "The License Service Message is not a valid JWT.") from None
    if envelope.get("version") != 1:
        raise _Refused(400, "Unsupported License Service Message version.")
    if envelope.get("com_key_id") != com_key_id:
        raise _Refused(400, "Unknown communication key id.")
    expiry = envelope.get("expiration_date")
    if expiry is not None:
        try:
            when = datetime.fromisoformat(expiry)
        except (TypeError, ValueError):
            raise _Refused(400, "expiration_date is not an ISO 8601 date.") from None
        if when.tzinfo is None or when <= datetime.now(UTC):
            raise _Refused(400, "The License Service Message has expired.")
    message = envelope.get("message")
    if not isinstance(message, dict):
        raise _Refused(400, "The License Service Message has no entitlement message.")
    if message.get("type") != "entitlement_message" or message.get("version") != 2:
        raise _Refused(400, "Only Entitlement Message v2 is accepted by this emulator.")
    return envelope


def _check_keys(message: dict[str, Any], license_request: bool) -> list[dict[str, Any]]:
    source = message.get("content_keys_source")
    if not isinstance(source, dict) or set(source) != {"inline"}:
        raise _Refused(400, "Exactly one content keys source (inline) must be given.")
    inline = source["inline"]
    if not isinstance(inline, list) or (license_request and not inline):
        raise _Refused(400, "content_keys_source.inline must list the entitled keys.")
    policies = message.get("content_key_usage_policies", [])
    names = {p.get("name") for p in policies if isinstance(p, dict)}
    for entry in inline:
        if not isinstance(entry, dict):
            raise _Refused(400, "content_keys_source.inline entries must be objects.")
        try:
            uuid.UUID(str(entry.get("id")))
        except ValueError:
            raise _Refused(400, "A content key id is not a GUID.") from None
        if "usage_policy" in entry and entry["usage_policy"] not in names:
            raise _Refused(
                400, f"Content key usage policy {entry['usage_policy']!r} is not defined."
            )
    return inline


def _names_existing_license(body: bytes) -> bool:
    """True for a Widevine renewal or release (they name a license, not keys)."""
    return widevine_request_type(body) in (RequestType.RENEWAL, RequestType.RELEASE)


def make_app(com_key_id: str, com_key_b64: str) -> web.Application:
    """The emulator for one tenant: its communication key id and base64 key."""
    com_key = base64.b64decode(com_key_b64)
    app = new_app(_reject)

    async def acquire(request: web.Request) -> web.StreamResponse:
        drm = request.match_info["drm"]
        entry = await record(request)
        header = request.headers.get("X-AxDRM-Message")
        query = request.query.get("AxDrmMessage")
        if header and query:
            return _error(drm, 400, "Give the License Service Message in one place only.")
        token = header or query
        if not token:
            return _error(drm, 400, "The License Service Message is missing.")
        body = entry.body
        if not body:
            return _error(drm, 400, "The license request body is empty.")
        certificate = drm == "widevine" and body == b"\x08\x04"
        existing = drm == "widevine" and not certificate and _names_existing_license(body)
        try:
            envelope = _check_envelope(token, com_key_id, com_key)
            message = envelope["message"]
            inline = _check_keys(message, license_request=not (certificate or existing))
        except _Refused as refused:
            return _error(drm, refused.status, refused.message, refused.fault_code)
        entry.decoded.update(envelope)
        if drm == "playready" and (
            b"AcquireLicense" not in body or "SOAPAction" not in request.headers
        ):
            return _error(drm, 500, "The PlayReady license request is malformed.", "0x8004C601")
        headers = _info_headers(drm)
        if certificate:
            return web.Response(
                body=SERVICE_CERTIFICATE, content_type="application/octet-stream", headers=headers
            )
        server = message.get("license_server", {})
        if isinstance(server, dict) and server.get("return_license_request_info"):
            info = {
                "version": 1,
                "com_key_id": com_key_id,
                "message": {
                    "version": 1,
                    "type": f"{drm}_license_request_info",
                    "device_info": {"platform": "emulator", "device_id": "emulated-device"},
                },
            }
            headers["X-AxDRM-Message"] = jwt.encode(info, com_key, algorithm="HS256")
        facts = {
            "vendor": "axinom",
            "drm": drm,
            "request_type": "renewal" if existing else "new",
            "keys": [k["id"] for k in inline],
            "license": message.get("license", {}),
            "session": message.get("session", {}),
        }
        license_bytes, content_type = license_for(drm, facts)
        response = web.Response(body=license_bytes, headers=headers)
        response.headers["Content-Type"] = content_type
        return response

    app.router.add_post("/{drm:widevine|playready|fairplay}/AcquireLicense", acquire)
    return app


def urls(base: str) -> dict[str, str]:
    """The per-DRM ``AcquireLicense`` URLs of an emulator served at ``base``."""
    return {drm: f"{base}/{drm}/AcquireLicense" for drm in ("widevine", "playready", "fairplay")}


__all__ = ["STATE", "make_app", "urls"]
