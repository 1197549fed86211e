"""A castLabs DRMtoday license service emulator, written from VENDOR_FACTS section 9 alone.

Routes (9.1): ``POST /license-proxy-widevine/cenc/`` (``?specConform=true`` for the
raw license), ``POST /license-proxy-headerauth/drmtoday/RightsManager.asmx`` and
``POST /license-server-fairplay/``; ``logRequestId`` (32 hex digits) is accepted on
each. Every request must carry the upfront token (9.3) in ``x-dt-auth-token``: its
header (``alg`` HS256/384/512, ``kid`` of a known secret, ``typ`` JWT), signature,
``jti`` (a UUID, never reused), ``iat``, ``exp``, ``optData`` (a JSON string naming
this merchant and a user) and ``crt`` (a JSON string in the shapes of 9.5) are
checked; custom data (9.2), when sent, must agree. Each DRM's framing (9.4) is
checked: Widevine ``application/octet-stream``, PlayReady ``text/xml`` with the
``SOAPAction``, FairPlay the form ``spc=<percent-encoded standard base64>``.

Whatever breaks that format is a violation: recorded in the state's
``violations`` and answered as DRMtoday fails (9.7): an HTTP error with
``x-dt-resp-code`` (10001 bad request, 3000 authentication) and
``x-dt-error-message``. Licenses are the kit's stand-ins carrying what was
understood; Widevine answers come as JSON with device fields unless
``specConform=true``, and every answer carries ``x-dt-client-info``.
"""

from __future__ import annotations

import base64
import binascii
import functools
import json
import re
import time
import uuid
from typing import Any
from urllib.parse import parse_qsl

import jwt
from aiohttp import web

from proxy import RequestType
from proxy.testing.emulator import (
    SERVICE_CERTIFICATE,
    STATE,
    FaultSwitch,
    Received,
    license_for,
    new_app,
    record,
    violation,
    widevine_request_type,
)

#: The license paths of 9.1, by DRM.
PATHS = {
    "widevine": "/license-proxy-widevine/cenc/",
    "playready": "/license-proxy-headerauth/drmtoday/RightsManager.asmx",
    "fairplay": "/license-server-fairplay/",
}
SOAP_ACTION = '"http://schemas.microsoft.com/DRM/2007/03/protocols/AcquireLicense"'
CLIENT_INFO = {
    "manufacturer": "Emulated",
    "model": "emulated-cdm",
    "secLevel": "3",
    "drmVersion": "16.1.0",
    "hdcpSupport": "HDCP_V2_2",
    "vmpStatus": "VMP_NOT_SUPPORTED",
    "vrConstraintSupport": False,
}
WIDEVINE_DEVICE = {
    "make": "Emulated",
    "model": "emulated-cdm",
    "security_level": 3,
    "platform": "emulator",
    "system_id": 4464,
    "client_max_hdcp_version": "HDCP_V2_2",
}
_ISO_DURATION = re.compile(r"^P(?=\d|T\d)(\d+D)?(T(?=\d)(\d+H)?(\d+M)?(\d+S)?)?$")
_HEX32 = re.compile(r"^[0-9a-f]{32}$")
_FORM_VALUE = re.compile(r"^[A-Za-z0-9%._~-]*$")
_HDCP = {
    "HDCP_NONE",
    "HDCP_V1",
    "HDCP_V2",
    "HDCP_V21",
    "HDCP_V22",
    "HDCP_V23",
    "HDCP_NO_DIGITAL_OUTPUT",
}
_CRT_KEYS = {"ref", "assetId", "variantId", "profile", "storeLicense", "outputProtection", "op"}
_TERMS = {"relativeExpiration", "playDuration"}


class Refused(Exception):
    """A request DRMtoday would refuse: its response code and message."""

    def __init__(self, code: int, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.status = status


def _refusal(code: int, message: str, status: int) -> web.Response:
    headers = {"x-dt-resp-code": str(code), "x-dt-error-message": message}
    return web.Response(status=status, text=message, headers=headers)


def _reject(request: web.Request, switch: FaultSwitch) -> web.StreamResponse:
    code = int(switch.code) if switch.code and switch.code.isdigit() else 40001
    status = switch.status if switch.status < 500 else 403
    return _refusal(code, "not_granted", status)


def _json_string(value: Any, what: str) -> dict[str, Any]:
    if not isinstance(value, str):
        raise Refused(3000, f"{what} must be a string holding serialized JSON")
    try:
        doc = json.loads(value)
    except ValueError:
        raise Refused(3000, f"{what} is not JSON") from None
    if not isinstance(doc, dict):
        raise Refused(3000, f"{what} is not a JSON object")
    return doc


def check_profile(profile: Any) -> str:
    """The profile's kind (``purchase``/``rental``) in either shape of 9.5."""
    if not isinstance(profile, dict) or not profile:
        raise Refused(3000, "crt.profile must be an object")
    if "type" in profile:
        kind, terms = profile["type"], {k: v for k, v in profile.items() if k != "type"}
    elif len(profile) == 1:
        [(kind, terms)] = profile.items()
        if not isinstance(terms, dict):
            raise Refused(3000, "crt.profile.<kind> must be an object")
    else:
        raise Refused(3000, "crt.profile must be typed or keyed")
    if kind not in ("purchase", "rental"):
        raise Refused(3000, f"crt.profile: unknown kind {kind!r}")
    if kind == "purchase" and terms:
        raise Refused(3000, "crt.profile: a purchase has no terms")
    for name, value in terms.items():
        if name not in _TERMS:
            raise Refused(3000, f"crt.profile: unknown term {name!r}")
        if not isinstance(value, str) or not _ISO_DURATION.match(value):
            raise Refused(3000, f"crt.profile.{name} is not an ISO 8601 duration")
    return str(kind)


def check_crt(crt: dict[str, Any]) -> None:
    """The CRT's fields and their shapes (9.5)."""
    unknown = set(crt) - _CRT_KEYS
    if unknown:
        raise Refused(3000, f"crt: unknown fields {sorted(unknown)}")
    ref = crt.get("ref", [])
    if not isinstance(ref, list) or not all(isinstance(r, str) and r for r in ref):
        raise Refused(3000, "crt.ref must list template references")
    for name in ("assetId", "variantId"):
        if name in crt and (not isinstance(crt[name], str) or not crt[name]):
            raise Refused(3000, f"crt.{name} must be a non-empty string")
    check_profile(crt.get("profile"))
    if "storeLicense" in crt and not isinstance(crt["storeLicense"], bool):
        raise Refused(3000, "crt.storeLicense must be a boolean")
    op = crt.get("op")
    if op is not None:
        config = op.get("config") if isinstance(op, dict) else None
        if not isinstance(config, dict) or set(op) != {"config"} or not config:
            raise Refused(3000, "crt.op must be {config: {<class>: ...}}")
        for name, rules in config.items():
            widevine = rules.get("WidevineM") if isinstance(rules, dict) else None
            if not isinstance(widevine, dict) or not widevine:
                raise Refused(3000, f"crt.op.config.{name} has no WidevineM rules")
            if set(widevine) - {"minSL", "requireHDCP"}:
                raise Refused(3000, f"crt.op.config.{name}.WidevineM: unknown fields")
            level = widevine.get("minSL", 1)
            if not isinstance(level, int) or isinstance(level, bool) or not 1 <= level <= 5:
                raise Refused(3000, f"crt.op.config.{name}.WidevineM.minSL must be 1-5")
            if widevine.get("requireHDCP", "HDCP_NONE") not in _HDCP:
                raise Refused(3000, f"crt.op.config.{name}.WidevineM.requireHDCP is unknown")


class Tenant:
    """One merchant at the emulated DRMtoday: its name and shared secrets by ``kid``."""

    def __init__(self, merchant: str, secrets: dict[str, bytes]) -> None:
        self.merchant = merchant
        self.secrets = secrets
        self.seen: set[str] = set()

    def check_token(self, token: str) -> dict[str, Any]:
        """The verified claims of an upfront token, its ``optData`` and ``crt`` decoded."""
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError:
            raise Refused(3000, "x-dt-auth-token is not a JWT") from None
        for name in ("alg", "kid", "typ"):
            if name not in header:
                raise Refused(3000, f"the token header lacks {name}")
        if header["typ"] != "JWT" or header["alg"] not in ("HS256", "HS384", "HS512"):
            raise Refused(3000, "the token must be a JWT signed HS256, HS384 or HS512")
        secret = self.secrets.get(str(header["kid"]))
        if secret is None:
            raise Refused(3000, "unknown kid", status=403)
        try:
            claims = jwt.decode(
                token,
                secret,
                algorithms=[header["alg"]],
                options={"require": ["iat", "jti"], "verify_iat": False},
                leeway=30,
            )
        except jwt.ExpiredSignatureError:
            raise Refused(3000, "the token has expired", status=403) from None
        except jwt.InvalidSignatureError:
            raise Refused(3000, "token signature verification failed", status=403) from None
        except jwt.PyJWTError as exc:
            raise Refused(3000, f"the token is invalid: {type(exc).__name__}") from None
        if not isinstance(claims["iat"], int) or claims["iat"] > time.time() + 30:
            raise Refused(3000, "iat must be integer seconds, not in the future")
        if "exp" in claims and not isinstance(claims["exp"], int):
            raise Refused(3000, "exp must be integer seconds")
        try:
            uuid.UUID(str(claims["jti"]))
        except ValueError:
            raise Refused(3000, "jti must be a UUID") from None
        if claims["jti"] in self.seen:
            raise Refused(3000, "the token was used before (jti)", status=403)
        self.seen.add(claims["jti"])
        opt = _json_string(claims.get("optData"), "optData")
        if set(opt) - {"merchant", "userId", "sessionId"} or opt.get("merchant") != self.merchant:
            raise Refused(3000, "optData must name this merchant, a userId and a sessionId only")
        for name in ("userId", "sessionId"):
            if name in opt and (not isinstance(opt[name], str) or not opt[name]):
                raise Refused(3000, f"optData.{name} must be a non-empty string")
        if "userId" not in opt:
            raise Refused(3000, "optData.userId is required")
        crt = _json_string(claims.get("crt"), "crt")
        check_crt(crt)
        return {**claims, "optData": opt, "crt": crt}

    def check_custom_data(self, request: web.Request, opt: dict[str, Any]) -> None:
        """Custom data, when sent (either spelling), is base64 JSON agreeing with ``optData``."""
        values = [
            request.headers[h]
            for h in ("x-dt-custom-data", "dt-custom-data")
            if h in request.headers
        ]
        for value in values:
            try:
                doc = json.loads(base64.b64decode(value, validate=True))
            except (ValueError, binascii.Error):
                raise Refused(10001, "custom data is not base64 JSON") from None
            if not isinstance(doc, dict) or set(doc) - {"userId", "sessionId", "merchant"}:
                raise Refused(10001, "custom data holds userId, sessionId and merchant only")
            if doc.get("merchant") != opt["merchant"] or doc.get("userId") != opt["userId"]:
                raise Refused(10001, "custom data and optData disagree")


def _check_query(request: web.Request, drm: str) -> bool:
    spec_conform = False
    for name, value in request.query.items():
        if name == "specConform" and drm == "widevine" and value in ("true", "false"):
            spec_conform = value == "true"
        elif name == "logRequestId":
            if not _HEX32.match(value):
                raise Refused(10001, "logRequestId must be 32 hex digits")
        elif name not in ("assetId", "offline"):
            raise Refused(10001, f"unknown query parameter {name!r}")
    return spec_conform


def _check_fairplay(request: web.Request, body: bytes) -> dict[str, str]:
    if request.content_type != "application/x-www-form-urlencoded":
        raise Refused(10001, "FairPlay requests are application/x-www-form-urlencoded")
    try:
        text = body.decode("ascii")
    except UnicodeDecodeError:
        raise Refused(10001, "the form is not ASCII") from None
    raw = dict(part.partition("=")[::2] for part in text.split("&"))
    if set(raw) - {"spc", "assetId", "variantId", "offline"} or "spc" not in raw:
        raise Refused(10001, "the form is spc=...[&assetId=...&variantId=...]")
    if not _FORM_VALUE.match(raw["spc"]):
        raise Refused(10001, "spc must be percent-encoded (+, / and = escaped)")
    form = dict(parse_qsl(text))
    try:
        spc = base64.b64decode(form["spc"], validate=True)
    except (binascii.Error, ValueError):
        raise Refused(10001, "spc is not standard base64") from None
    if not spc:
        raise Refused(10001, "spc is empty")
    return form


def _check_framing(request: web.Request, drm: str, body: bytes) -> dict[str, str]:
    if not body:
        raise Refused(10001, "the license request body is empty")
    if drm == "fairplay":
        return _check_fairplay(request, body)
    if drm == "playready":
        if request.content_type != "text/xml":
            raise Refused(10001, "PlayReady requests are text/xml")
        if request.headers.get("SOAPAction") != SOAP_ACTION:
            raise Refused(10001, "SOAPAction must be the AcquireLicense action")
        if b"AcquireLicense" not in body:
            raise Refused(42000, "the PlayReady challenge is malformed", status=500)
    elif request.content_type != "application/octet-stream":
        raise Refused(10001, "Widevine requests are application/octet-stream")
    return {}


def _headers() -> dict[str, str]:
    info = base64.b64encode(json.dumps(CLIENT_INFO).encode()).decode()
    renewal = base64.b64encode(json.dumps({"renewalPeriod": 300}).encode()).decode()
    return {"x-dt-client-info": info, "x-dt-csl-renewal-info": renewal}


def _widevine_answer(payload: bytes, spec_conform: bool) -> web.Response:
    if spec_conform:
        return web.Response(
            body=payload, content_type="application/octet-stream", headers=_headers()
        )
    doc = {"status": "OK", "license": base64.b64encode(payload).decode(), **WIDEVINE_DEVICE}
    return web.json_response(doc, headers=_headers())


def _facts(drm: str, entry: Received, form: dict[str, str]) -> dict[str, Any]:
    claims = entry.decoded
    crt = claims["crt"]
    return {
        "vendor": "drmtoday",
        "drm": drm,
        "merchant": claims["optData"]["merchant"],
        "user": claims["optData"]["userId"],
        "asset": crt.get("assetId") or form.get("assetId"),
        "profile": crt["profile"],
        "store_license": crt.get("storeLicense"),
        "op": crt.get("op", {}),
    }


def make_app(merchant: str, secrets: dict[str, bytes]) -> web.Application:
    """The emulator for one merchant and its shared secrets (``kid`` -> raw secret bytes)."""
    tenant = Tenant(merchant, secrets)
    app = new_app(_reject)

    async def acquire(request: web.Request, drm: str) -> web.StreamResponse:
        entry = await record(request)
        try:
            spec_conform = _check_query(request, drm)
            token = request.headers.get("x-dt-auth-token")
            if not token:
                raise Refused(
                    3000, "no x-dt-auth-token (callback authorization is not set up)", 403
                )
            claims = tenant.check_token(token)
            entry.decoded.update(claims)
            tenant.check_custom_data(request, claims["optData"])
            form = _check_framing(request, drm, entry.body)
        except Refused as refused:
            violation(request, refused.message)
            return _refusal(refused.code, refused.message, refused.status)
        kind = widevine_request_type(entry.body) if drm == "widevine" else RequestType.NEW
        if kind is RequestType.SERVICE_CERTIFICATE or entry.body == b"\x08\x04":
            return _widevine_answer(SERVICE_CERTIFICATE, spec_conform)
        facts = _facts(drm, entry, form)
        facts["request_type"] = "renewal" if kind is RequestType.RENEWAL else "new"
        license_bytes, content_type = license_for(drm, facts)
        if drm == "widevine":
            return _widevine_answer(license_bytes, spec_conform)
        if drm == "fairplay":
            text = base64.b64encode(license_bytes).decode()
            return web.Response(text=text, content_type="text/plain", headers=_headers())
        response = web.Response(body=license_bytes, headers=_headers())
        response.headers["Content-Type"] = content_type
        return response

    for drm, path in PATHS.items():
        app.router.add_post(path, functools.partial(acquire, drm=drm))
    return app


def urls(base: str) -> dict[str, str]:
    """The per-DRM license URLs of an emulator served at ``base``."""
    return {drm: base + path for drm, path in PATHS.items()}


__all__ = ["STATE", "Tenant", "check_crt", "check_profile", "make_app", "urls"]
