"""A Verimatrix Multi-DRM license server emulator.

``POST /{widevine|playready|fairplay}`` with the license-server JWT in
``Authorization`` (raw, or ``Bearer`` when told). It verifies the signature
with the Service Access Key's public half and its ``kid``, then the claims
the way Verimatrix documents them (``aud`` registered, ``sub`` present,
``iat`` present and not in the future, ``nbf``, ``exp``, lifetime at most
120 s, ``jti``) with 5 s of skew, and answers errors as JSON
``{"code": "MDRM-…", "message": …}`` with the documented HTTP status (the
real body format is UNVERIFIED). FairPlay is ``{"spc"}`` in, ``{"ckc"}`` out.
"""

from __future__ import annotations

import base64
import binascii
import json
import time
from typing import Any

import jwt
from aiohttp import web

from proxy.testing.emulator import SERVICE_CERTIFICATE, FaultSwitch, license_for, new_app, record

SKEW = 5
MAX_AGE = 120
#: HTTP status per MDRM code (VENDOR_FACTS 2.6).
MDRM_STATUS = {
    500: 500, 501: 401, 502: 401, 503: 403, 504: 401, 505: 401, 506: 401, 507: 500,
    508: 401, 509: 401, 510: 401, 511: 401, 717: 404,
    1000: 500, 1001: 401, 1002: 401, 1003: 404, 1004: 400, 1005: 404, 1006: 400, 1007: 400,
    1008: 400, 1009: 500, 1010: 500, 1011: 404, 1012: 500, 1013: 400, 1014: 400, 1015: 503,
    1110: 404,
}  # fmt: skip


def mdrm(code: int, message: str, retry_after: str | None = None) -> web.Response:
    """A Verimatrix-style error answer."""
    headers = {"Retry-After": retry_after} if retry_after else {}
    return web.json_response(
        {"code": f"MDRM-{code}", "message": message},
        status=MDRM_STATUS.get(code, 400),
        headers=headers,
    )


def _reject(request: web.Request, switch: FaultSwitch) -> web.StreamResponse:
    code = int((switch.code or "MDRM-1011").removeprefix("MDRM-"))
    return mdrm(code, "The request was refused.", switch.retry_after)


class _Refused(Exception):
    def __init__(self, code: int, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


def _check_token(
    raw: str | None, public_key: Any, key_id: str, audience: str, algorithm: str, bearer: bool
) -> dict[str, Any]:
    if not raw:
        raise _Refused(501, "Authorization token missing.")
    if bearer:
        if not raw.startswith("Bearer "):
            raise _Refused(502, "Authorization token could not be decoded.")
        raw = raw[7:]
    try:
        header = jwt.get_unverified_header(raw)
    except jwt.PyJWTError:
        raise _Refused(502, "Authorization token could not be decoded.") from None
    if header.get("kid") != key_id or header.get("alg") != algorithm:
        raise _Refused(504, "No service access key matches the token.")
    try:
        claims = jwt.decode(
            raw,
            public_key,
            algorithms=[algorithm],
            options={
                "verify_aud": False,
                "verify_exp": False,
                "verify_nbf": False,
                "verify_iat": False,
            },
        )
    except jwt.PyJWTError:
        raise _Refused(502, "Authorization token could not be decoded.") from None
    now = time.time()
    if claims.get("aud") != audience:
        raise _Refused(503, "Audience not allowed.")
    if "iat" not in claims:
        raise _Refused(509, "The token has no iat.")
    iat = claims["iat"]
    if iat > now + SKEW:
        raise _Refused(510, "The token's iat is in the future.")
    if "nbf" in claims and claims["nbf"] > now + SKEW:
        raise _Refused(511, "The token's nbf is in the future.")
    if now > iat + MAX_AGE + SKEW or ("exp" in claims and now > claims["exp"] + SKEW):
        raise _Refused(508, "The token has expired.")
    if "exp" in claims and claims["exp"] - iat > MAX_AGE:
        raise _Refused(508, "The token lives longer than allowed.")
    if not claims.get("sub") or not claims.get("jti"):
        raise _Refused(502, "The token lacks sub or jti.")
    return claims


def make_app(
    public_key: Any,
    key_id: str,
    audience: str,
    *,
    algorithm: str = "ES256",
    bearer: bool = False,
) -> web.Application:
    """The emulator for one Service Access Key (public half), its id and registered audience."""
    app = new_app(_reject)

    async def acquire(request: web.Request) -> web.StreamResponse:
        drm = request.match_info["drm"]
        entry = await record(request)
        try:
            claims = _check_token(
                request.headers.get("Authorization"),
                public_key,
                key_id,
                audience,
                algorithm,
                bearer,
            )
        except _Refused as refused:
            return mdrm(refused.code, refused.message)
        entry.decoded.update(claims)
        facts = {
            "vendor": "verimatrix",
            "drm": drm,
            "sub": claims["sub"],
            "security_policy": claims.get("security_policy", {}),
            "track_type_policy": claims.get("track_type_policy", {}),
            "policy": claims.get("policy", {}),
        }
        if drm == "fairplay":
            if request.content_type != "application/json":
                return mdrm(1006, "FairPlay requests are JSON.")
            try:
                spc = base64.b64decode(json.loads(entry.body)["spc"], validate=True)
            except (ValueError, KeyError, TypeError, binascii.Error):
                return mdrm(1004, "SPC missing.")
            if not spc:
                return mdrm(1004, "SPC missing.")
            ckc, _ = license_for("fairplay", facts)
            return web.json_response({"ckc": base64.b64encode(ckc).decode()})
        if not entry.body:
            return mdrm(1004 if drm == "fairplay" else 502, "The license request body is empty.")
        if drm == "widevine" and entry.body == b"\x08\x04":
            return web.Response(body=SERVICE_CERTIFICATE, content_type="application/octet-stream")
        body, content_type = license_for(drm, facts)
        response = web.Response(body=body)
        response.headers["Content-Type"] = content_type
        return response

    app.router.add_post("/{drm:widevine|playready|fairplay}", acquire)
    return app


def urls(base: str) -> dict[str, str]:
    """The per-DRM license URLs of an emulator served at ``base``."""
    return {drm: f"{base}/{drm}" for drm in ("widevine", "playready", "fairplay")}
