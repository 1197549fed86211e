"""A BuyDRM KeyOS license server emulator, written from VENDOR_FACTS section 12 alone.

``POST /{widevine|playready|fairplay}`` with the challenge (raw; FairPlay the form
``spc=<base64>&assetId=<id>``) and the base64 Authentication XML in ``customdata`` or
``x-keyos-authorization`` (exactly one). The XML is checked as the facts describe
it (:mod:`~plugins.vendors.keyos.authcheck`): the root, ``Data`` and ``Signature``;
the times (``yyyy-MM-dd HH:mm:ss[.fff]``, UTC, not expired); ``UniqueId``; a
registered ``RSAPubKeyId`` whose key verifies the signature; the known policy
elements and their values, every ``Policy``/``Play`` a ``License`` names defined.

Answers: the emulated license (FairPlay as ``<ckc>base64</ckc>``); refusals in the
v4 endpoint's JSON form ``{"errorcode", "errormsg", "errorid"}``: HTTP 401 for an
Authentication XML it refuses (emulator code 900000401; KeyOS's own code for it is
UNVERIFIED), HTTP 403 with 371000005 for a challenge it can't parse (the one
documented code); a PlayReady challenge it can't parse is HTTP 500 with a SOAP
fault. Every violation is kept in ``decoded["violations"]`` for tests.
"""

from __future__ import annotations

import base64
import binascii
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from typing import Any
from urllib.parse import unquote

from aiohttp import web
from cryptography.hazmat.primitives.asymmetric import rsa

from plugins.vendors.keyos.authcheck import AuthXmlRefused, check_authentication_xml
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

AUTH_HEADERS = ("customdata", "x-keyos-authorization")
#: The documented code for a Widevine challenge KeyOS could not parse.
SIGNED_MESSAGE_PARSE_ERROR = 371000005
#: This emulator's code for an Authentication XML it refuses (KeyOS's is UNVERIFIED).
AUTH_XML_REFUSED = 900000401
SPC_VERSIONS = (b"\x00\x00\x00\x01", b"\x00\x00\x00\x02")


def _json_error(status: int, code: int, message: str) -> web.Response:
    return web.json_response(
        {"errorcode": code, "errormsg": message, "errorid": uuid.uuid4().hex}, status=status
    )


def _refuse(entry: Received, drm: str, problems: Sequence[str], *, auth: bool) -> web.Response:
    entry.decoded.setdefault("violations", []).extend(problems)
    message = "; ".join(problems)
    if auth:
        return _json_error(401, AUTH_XML_REFUSED, message)
    if drm == "playready":
        return web.Response(
            status=500,
            body=playready_fault("0x8004C601", message),
            content_type="text/xml",
            charset="utf-8",
        )
    return _json_error(
        403, SIGNED_MESSAGE_PARSE_ERROR, f"{drm} license generation failed ({message})"
    )


def _reject(request: web.Request, switch: FaultSwitch) -> web.StreamResponse:
    """KeyOS's own refusal: the JSON error form with ``code`` (371000005 by default)."""
    code = int(switch.code) if switch.code and switch.code.isdigit() else SIGNED_MESSAGE_PARSE_ERROR
    status = switch.status if switch.status < 500 else 403
    return _json_error(
        status, code, "Widevine license generation failed (SIGNED_MESSAGE_PARSE_ERROR)"
    )


def _fairplay_form(body: bytes) -> tuple[bytes | None, str | None, list[str]]:
    """The SPC and asset id of ``spc=<base64>&assetId=<id>``; a ``+`` in the base64 stays a
    plus (THEOplayer's sample sends the base64 unescaped)."""
    problems: list[str] = []
    try:
        text = body.decode("ascii")
    except UnicodeDecodeError:
        return None, None, ["the FairPlay body is the form spc=<base64>&assetId=<id>"]
    fields: dict[str, str] = {}
    for item in text.split("&"):
        name, _, value = item.partition("=")
        fields[name] = unquote(value)
    if set(fields) - {"spc", "assetId"}:
        problems.append("the FairPlay form holds spc and assetId only")
    spc = None
    try:
        spc = base64.b64decode(fields.get("spc", ""), validate=True)
    except (binascii.Error, ValueError):
        problems.append("spc is the base64 SPC")
    if spc is not None and (spc[:4] not in SPC_VERSIONS or len(spc) < 176):
        problems.append("spc is no SPC (version 1 or 2, 176 bytes or more)")
    asset = fields.get("assetId") or None
    if asset is None:
        problems.append("assetId names the content")
    return spc, asset, problems


def make_app(
    keys: Mapping[str, rsa.RSAPublicKey],
    *,
    digest: str = "sha1",
    signed_content: str = "data",
    clock: Callable[[], float] = time.time,
) -> web.Application:
    """The emulator for one tenant: its registered public keys by Key Hash (``RSAPubKeyId``),
    and the signature digest and signed content it checks."""
    app = new_app(_reject)

    async def acquire(request: web.Request) -> web.StreamResponse:
        drm = request.match_info["drm"]
        entry = await record(request)
        sent = [name for name in AUTH_HEADERS if name in request.headers]
        if len(sent) != 1:
            return _refuse(
                entry, drm, ["send the Authentication XML in one KeyOS header"], auth=True
            )
        try:
            facts = check_authentication_xml(
                request.headers[sent[0]], keys, digest, signed_content, clock()
            )
        except AuthXmlRefused as refused:
            return _refuse(entry, drm, refused.problems, auth=True)
        entry.decoded.update(facts)
        answer = _challenge(request, entry, drm)
        if isinstance(answer, web.Response):
            return answer
        license_facts: dict[str, Any] = {"vendor": "keyos", "drm": drm, **facts, **answer}
        body, content_type = license_for(drm, license_facts)
        if drm == "fairplay":
            text = f"<ckc>{base64.b64encode(body).decode()}</ckc>"
            return web.Response(text=text, content_type="text/plain")
        response = web.Response(body=body)
        response.headers["Content-Type"] = content_type
        return response

    app.router.add_post("/{drm:widevine|playready|fairplay}", acquire)
    return app


def _challenge(request: web.Request, entry: Received, drm: str) -> web.Response | dict[str, Any]:
    """The challenge's facts, or the refusal its framing earns."""
    body = entry.body
    if drm == "widevine":
        if body == b"\x08\x04":
            return web.Response(body=SERVICE_CERTIFICATE, content_type="application/octet-stream")
        kind = widevine_request_type(body)
        if kind is None:
            return _refuse(entry, drm, ["SIGNED_MESSAGE_PARSE_ERROR"], auth=False)
        return {"request_type": str(kind)}
    if drm == "playready":
        if b"AcquireLicense" not in body or "SOAPAction" not in request.headers:
            return _refuse(entry, drm, ["the challenge is no SOAP AcquireLicense"], auth=False)
        return {}
    _, asset, problems = _fairplay_form(body)
    if problems:
        return _refuse(entry, drm, problems, auth=False)
    return {"asset_id": asset}


def urls(base: str) -> dict[str, str]:
    """The per-DRM license URLs of an emulator served at ``base``."""
    return {drm: f"{base}/{drm}" for drm in ("widevine", "playready", "fairplay")}


def violations(app: web.Application) -> list[str]:
    """Every format violation the emulator has seen (empty when the adapter kept to it)."""
    return [v for entry in app[STATE].received for v in entry.decoded.get("violations", [])]


__all__ = ["STATE", "make_app", "urls", "violations"]
