"""An EZDRM license service emulator, written from VENDOR_FACTS section 11 alone.

- Widevine: ``POST /proxy?pX=<profile>[&CustomData=<base64>]`` with the raw challenge;
- PlayReady: ``POST /cency/preauth.aspx?pX=<profile>`` with the SOAP challenge;
- FairPlay: ``POST /api/licenses/<content id>`` with the raw SPC
  (``application/octet-stream``), answered with the raw CKC.

Each request is checked against that documented shape: the ``pX`` is 6 upper-case
hex characters (every public sample) and one of the tenant's profiles for the DRM;
FairPlay takes no ``pX`` and a KID GUID as content id (EZDRM's ``skd://`` key URIs);
the bodies are raw challenges; no header token (none is documented: a proxy that
sends the caller's ``Authorization`` on is leaking it). A request breaking the shape
is refused and its violations are kept in ``decoded["violations"]`` so tests can
assert there are none. EZDRM's error forms are UNVERIFIED: this emulator refuses with
HTTP 403 and a short text, and PlayReady with HTTP 500 and a SOAP fault, as PlayReady
servers do.
"""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Mapping, Sequence

from aiohttp import web

from proxy.testing.emulator import (
    SERVICE_CERTIFICATE,
    STATE,
    FaultSwitch,
    Received,
    license_for,
    new_app,
    playready_fault,
    record,
    widevine_request_type,
)

PX = re.compile(r"^[0-9A-F]{6}$")
GUID = re.compile(r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$")
SPC_VERSIONS = (b"\x00\x00\x00\x01", b"\x00\x00\x00\x02")
SPC_HEADER_SIZE = 176
PATHS = {"widevine": "/proxy", "playready": "/cency/preauth.aspx"}


def _refuse(entry: Received, drm: str, problems: Sequence[str]) -> web.Response:
    """Record the violations and refuse in EZDRM's (assumed) way."""
    entry.decoded.setdefault("violations", []).extend(problems)
    message = "; ".join(problems)
    if drm == "playready":
        return web.Response(
            status=500,
            body=playready_fault("0x8004C601", message),
            content_type="text/xml",
            charset="utf-8",
        )
    return web.Response(status=403, text=message)


def _reject(request: web.Request, switch: FaultSwitch) -> web.StreamResponse:
    """EZDRM's own refusal: a revoked device for PlayReady, a 403 otherwise."""
    if request.path == PATHS["playready"]:
        return web.Response(
            status=500,
            body=playready_fault(switch.code or "0x8004C065", "the device is revoked"),
            content_type="text/xml",
            charset="utf-8",
        )
    return web.Response(status=switch.status if switch.status < 500 else 403, text="Forbidden")


def _check_profile(request: web.Request, drm: str, profiles: Mapping[str, set[str]]) -> list[str]:
    problems = []
    values = request.query.getall("pX", [])
    if len(values) != 1:
        problems.append("exactly one pX query parameter is required")
    elif not PX.match(values[0]):
        problems.append("pX is 6 upper-case hex characters")
    elif values[0] not in profiles.get(drm, set()):
        problems.append(f"pX {values[0]} is no {drm} profile of this account")
    custom = request.query.get("CustomData")
    if custom is not None:
        try:
            base64.b64decode(custom, validate=True)
        except (binascii.Error, ValueError):
            problems.append("CustomData is base64")
    return problems


def _check_common(request: web.Request) -> list[str]:
    if "Authorization" in request.headers:
        return ["EZDRM takes no Authorization header (none is documented)"]
    return []


def make_app(profiles: Mapping[str, set[str]]) -> web.Application:
    """The emulator for one account: its ``pX`` profiles per DRM (``widevine``, ``playready``)."""
    app = new_app(_reject)

    async def widevine(request: web.Request) -> web.StreamResponse:
        entry = await record(request)
        problems = _check_common(request) + _check_profile(request, "widevine", profiles)
        body = entry.body
        certificate = body == b"\x08\x04"
        kind = None if certificate else widevine_request_type(body)
        if not certificate and kind is None:
            problems.append("the body is no Widevine license request")
        if request.headers.get("Content-Type") != "application/octet-stream":
            problems.append("the Widevine challenge goes as application/octet-stream")
        if problems:
            return _refuse(entry, "widevine", problems)
        entry.decoded.update(px=request.query["pX"], request_type=str(kind))
        if certificate:
            return web.Response(body=SERVICE_CERTIFICATE, content_type="application/octet-stream")
        return _license(entry, "widevine", {"px": request.query["pX"], "request_type": str(kind)})

    async def playready(request: web.Request) -> web.StreamResponse:
        entry = await record(request)
        problems = _check_common(request) + _check_profile(request, "playready", profiles)
        if b"AcquireLicense" not in entry.body or "SOAPAction" not in request.headers:
            problems.append("the PlayReady challenge is a SOAP AcquireLicense with SOAPAction")
        if not request.headers.get("Content-Type", "").startswith("text/xml"):
            problems.append("the PlayReady challenge goes as text/xml")
        if problems:
            return _refuse(entry, "playready", problems)
        entry.decoded.update(px=request.query["pX"])
        return _license(entry, "playready", {"px": request.query["pX"]})

    async def fairplay(request: web.Request) -> web.StreamResponse:
        entry = await record(request)
        content_id = request.match_info["content_id"]
        problems = _check_common(request)
        if "pX" in request.query:
            problems.append("EZDRM's FairPlay URL takes no pX")
        if not GUID.match(content_id):
            problems.append("the FairPlay content id is the KID GUID after ';' in the key URI")
        spc = entry.body
        if spc[:4] not in SPC_VERSIONS or len(spc) < SPC_HEADER_SIZE:
            problems.append("the body is the raw SPC (version 1 or 2, 176 bytes or more)")
        if request.headers.get("Content-Type") != "application/octet-stream":
            problems.append("the SPC goes as application/octet-stream")
        if problems:
            return _refuse(entry, "fairplay", problems)
        entry.decoded.update(content_id=content_id)
        return _license(entry, "fairplay", {"content_id": content_id})

    app.router.add_post(PATHS["widevine"], widevine)
    app.router.add_post(PATHS["playready"], playready)
    app.router.add_post("/api/licenses/{content_id}", fairplay)
    return app


def _license(entry: Received, drm: str, facts: dict[str, str]) -> web.Response:
    body, content_type = license_for(drm, {"vendor": "ezdrm", "drm": drm, **facts})
    response = web.Response(body=body)
    response.headers["Content-Type"] = content_type
    return response


def urls(base: str) -> dict[str, str]:
    """The per-DRM license URLs of an emulator served at ``base`` (FairPlay's a template)."""
    return {
        "widevine": f"{base}{PATHS['widevine']}",
        "playready": f"{base}{PATHS['playready']}",
        "fairplay": f"{base}/api/licenses/{{content_id}}",
    }


def violations(app: web.Application) -> list[str]:
    """Every format violation the emulator has seen (an empty list when the adapter kept to
    the documented format)."""
    return [v for entry in app[STATE].received for v in entry.decoded.get("violations", [])]


__all__ = ["STATE", "make_app", "urls", "violations"]
