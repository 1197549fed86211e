"""A DoveRunner (PallyCon) license service emulator, written from VENDOR_FACTS section 10 alone.

``POST /ri/licenseManager.do`` (10.1), one URL for every DRM, with the license token
in the ``pallycon-customdata-v2`` header or query parameter (10.2), exactly one of
them. It checks the token (10.3): its fields and nothing else, ``drm_type`` spelled
as documented and matching the challenge, this site's ``site_id``, a ``cid`` of at
most 200 bytes, a ``timestamp`` within the token lifetime (600 s), the ``hash``
with the access key, and the ``policy``: decrypted with the site key and checked
against the policy JSON v2 schema (10.4), field names and value domains. The body
must be framed as DoveRunner's proxies send it: Widevine and PlayReady
``application/octet-stream``, FairPlay the form ``spc=<percent-encoded base64>``
(10.7) and nothing more.

Whatever breaks that format is a violation: recorded in the state's
``violations`` and answered as DoveRunner fails (10.6): HTTP 200 with
``{"errorCode", "message"}``. Licenses are the kit's stand-ins carrying what was
understood, in the token's ``response_format`` (10.5): ``original`` (FairPlay
base64) or ``json`` (``license`` hex for Widevine, ``device_info.device_id``).
"""

from __future__ import annotations

import base64
import binascii
import calendar
import hashlib
import json
import re
import time
from typing import Any
from urllib.parse import parse_qsl

from aiohttp import web
from cryptography.hazmat.primitives import padding
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

from proxy import RequestType
from proxy.testing.emulator import (
    SERVICE_CERTIFICATE,
    STATE,
    FaultSwitch,
    license_for,
    new_app,
    record,
    violation,
    widevine_request_type,
)

PATH = "/ri/licenseManager.do"
TOKEN_NAME = "pallycon-customdata-v2"  # noqa: S105 - a header name
TOKEN_LIFETIME = 600
DEVICE_ID = "emulated-device-7f3a"
_TOKEN_FIELDS = (
    "drm_type",
    "site_id",
    "user_id",
    "cid",
    "policy",
    "response_format",
    "key_rotation",
    "timestamp",
    "hash",
)
_REQUIRED = ("drm_type", "site_id", "user_id", "cid", "policy", "timestamp", "hash")
_DRM_TYPES = {"Widevine": "widevine", "PlayReady": "playready", "FairPlay": "fairplay"}
_STAMP = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$")
_FORM_VALUE = re.compile(r"^[A-Za-z0-9%._~-]*$")

_BOOL, _INT = "bool", "int"
_PLAYBACK: dict[str, Any] = {
    "persistent": _BOOL,
    "license_duration": _INT,
    "expire_date": "date",
    "rental_duration": _INT,
    "playback_duration": _INT,
    "allowed_track_types": {"ALL", "SD_ONLY", "SD_HD", "SD_UHD1", "SD_UHD2"},
    "max_stream_per_user": _INT,
    "renewal_duration": _INT,
}
_HDCP = {"HDCP_NONE", "HDCP_V1", "HDCP_V2", "HDCP_V2_1", "HDCP_V2_2", "HDCP_NO_DIGITAL_OUTPUT"}
_SECURITY: dict[str, dict[str, Any]] = {
    "widevine": {
        "security_level": {1, 2, 3, 4, 5},
        "required_hdcp_version": _HDCP,
        "required_cgms_flags": {"CGMS_NONE", "COPY_FREE", "COPY_ONCE", "COPY_NEVER"},
        "disable_analog_output": _BOOL,
        "hdcp_srm_rule": {"HDCP_SRM_RULE_NONE", "CURRENT_SRM"},
        "override_device_revocation": _BOOL,
        "enable_license_cipher": _BOOL,
        "allow_test_device": _BOOL,
    },
    "playready": {
        "security_level": {150, 2000, 3000},
        "digital_video_protection_level": {100, 250, 270, 300, 301},
        "analog_video_protection_level": {100, 150, 200, 201},
        "digital_audio_protection_level": {100, 250, 300, 301},
        "require_hdcp_type_1": _BOOL,
        "enable_license_cipher": _BOOL,
    },
    "fairplay": {"hdcp_enforcement": {-1, 0, 1}, "allow_airplay": _BOOL, "allow_av_adapter": _BOOL},
    "ncg": {
        "allow_mobile_abnormal_device": _BOOL,
        "allow_external_display": _BOOL,
        "control_hdcp": {0, 1, 2},
    },
    "wiseplay": {"security_level": _INT, "output_control": _INT},
}
_TRACK_TYPES = {"ALL", "ALL_VIDEO", "AUDIO", "SD", "HD", "UHD1", "UHD2"}


class Refused(Exception):
    """A request DoveRunner would refuse: its error code and message."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


def _error(code: str, message: str) -> web.Response:
    return web.json_response({"errorCode": code, "message": message})


def _reject(request: web.Request, switch: FaultSwitch) -> web.StreamResponse:
    return _error(switch.code or "7110", "The device certificate is revoked.")


def _check_value(path: str, value: Any, domain: Any) -> None:
    if domain == _BOOL:
        ok = isinstance(value, bool)
    elif domain == _INT:
        ok = isinstance(value, int) and not isinstance(value, bool) and value >= 0
    elif domain == "date":
        ok = isinstance(value, str) and bool(_STAMP.match(value))
    else:
        ok = not isinstance(value, bool) and value in domain
    if not ok:
        raise Refused("7013", f"policy: {path} = {value!r} is not allowed")


def _check_object(path: str, doc: Any, schema: dict[str, Any]) -> None:
    if not isinstance(doc, dict):
        raise Refused("7013", f"policy: {path} must be an object")
    for name, value in doc.items():
        if name not in schema:
            raise Refused("7013", f"policy: unknown field {path}.{name}")
        _check_value(f"{path}.{name}", value, schema[name])


def check_policy(policy: Any) -> None:
    """A policy JSON v2 against the documented schema (10.4)."""
    if not isinstance(policy, dict) or policy.get("policy_version") != 2:
        raise Refused("7013", "policy: policy_version must be 2")
    unknown = set(policy) - {"policy_version", "playback_policy", "security_policy", "external_key"}
    if unknown:
        raise Refused("7013", f"policy: unknown fields {sorted(unknown)}")
    playback = policy.get("playback_policy", {})
    _check_object("playback_policy", playback, _PLAYBACK)
    offline = ("rental_duration", "playback_duration")
    if any(name in playback for name in offline) and playback.get("persistent") is not True:
        raise Refused("7013", "policy: rental and playback durations need persistent = true")
    entries = policy.get("security_policy", [])
    if not isinstance(entries, list):
        raise Refused("7013", "policy: security_policy must be an array")
    for index, entry in enumerate(entries):
        path = f"security_policy[{index}]"
        if not isinstance(entry, dict) or entry.get("track_type") not in _TRACK_TYPES:
            raise Refused("7013", f"policy: {path}.track_type is not a track type")
        for name, body in entry.items():
            if name == "track_type":
                continue
            if name not in _SECURITY:
                raise Refused("7013", f"policy: unknown field {path}.{name}")
            _check_object(f"{path}.{name}", body, _SECURITY[name])


def _body_drm(request: web.Request, body: bytes) -> tuple[str, bytes]:
    """Which DRM the body is, framed as DoveRunner takes it; the challenge bytes."""
    if not body:
        raise Refused("9001", "the license request body is empty")
    if body.startswith(b"spc="):
        if request.content_type != "application/x-www-form-urlencoded":
            raise Refused("7317", "FairPlay requests are application/x-www-form-urlencoded")
        text = body.decode("ascii", "replace")
        if "&" in text:
            raise Refused("9001", "the FairPlay form is spc=... alone (the cid is in the token)")
        if not _FORM_VALUE.match(text[4:]):
            raise Refused("7317", "spc must be percent-encoded (+, / and = escaped)")
        try:
            spc = base64.b64decode(dict(parse_qsl(text))["spc"], validate=True)
        except (binascii.Error, ValueError, KeyError):
            raise Refused("7317", "spc is not standard base64") from None
        if not spc:
            raise Refused("7305", "the SPC is empty")
        return "fairplay", spc
    if request.content_type != "application/octet-stream":
        raise Refused("9001", "Widevine and PlayReady requests are application/octet-stream")
    if b"AcquireLicense" in body[:4096] and body.lstrip()[:1] == b"<":
        return "playready", body
    if body == b"\x08\x04" or widevine_request_type(body) is not None:
        return "widevine", body
    raise Refused("7101", "the body is no Widevine, PlayReady or FairPlay challenge")


def _hash(access_key: str, token: dict[str, Any]) -> str:
    """The hash a token must carry (10.3), computed here on its own, not by the adapter's code."""
    names = ("drm_type", "site_id", "user_id", "cid", "policy", "timestamp")
    text = access_key + "".join(token[n] for n in names)
    return base64.b64encode(hashlib.sha256(text.encode("utf-8")).digest()).decode()


def _decrypt(policy: str, site_key: bytes) -> bytes:
    """AES-256-CBC with the site key's bytes and the fixed IV, PKCS#7 (10.3)."""
    decryptor = Cipher(algorithms.AES(site_key), modes.CBC(b"0123456789abcdef")).decryptor()
    padded = decryptor.update(base64.b64decode(policy, validate=True)) + decryptor.finalize()
    unpadder = padding.PKCS7(128).unpadder()
    return unpadder.update(padded) + unpadder.finalize()


class Site:
    """One DoveRunner site: its id and its two console keys."""

    def __init__(self, site_id: str, site_key: str, access_key: str) -> None:
        self.site_id = site_id
        self.site_key = site_key.encode("utf-8")
        self.access_key = access_key

    def check_token(self, value: str, drm: str) -> dict[str, Any]:
        """The token's fields with its policy decrypted, checked as DoveRunner would."""
        try:
            token = json.loads(base64.b64decode(value, validate=True))
        except (binascii.Error, ValueError):
            raise Refused("7009", "the token is not base64 JSON") from None
        if not isinstance(token, dict):
            raise Refused("7009", "the token is not a JSON object")
        unknown = set(token) - set(_TOKEN_FIELDS)
        if unknown:
            raise Refused("7013", f"unknown token fields {sorted(unknown)}")
        missing = [
            name for name in _REQUIRED if not isinstance(token.get(name), str) or not token[name]
        ]
        if missing:
            raise Refused("9001", f"token fields missing or not strings: {missing}")
        if token["drm_type"] not in _DRM_TYPES or _DRM_TYPES[token["drm_type"]] != drm:
            raise Refused("7018", f"drm_type {token['drm_type']!r} does not fit the {drm} request")
        if token["site_id"] != self.site_id:
            raise Refused("1003", "site id not found")
        if len(token["cid"].encode("utf-8")) > 200:
            raise Refused("7012", "cid longer than 200 bytes")
        if token.get("response_format", "original") not in ("original", "json"):
            raise Refused("9999", "unsupported response_format")
        if "key_rotation" in token and not isinstance(token["key_rotation"], bool):
            raise Refused("7013", "key_rotation must be a boolean")
        if not _STAMP.match(token["timestamp"]):
            raise Refused("7016", "timestamp is not yyyy-MM-ddTHH:mm:ssZ")
        age = time.time() - calendar.timegm(time.strptime(token["timestamp"], "%Y-%m-%dT%H:%M:%SZ"))
        if age > TOKEN_LIFETIME:
            raise Refused("7011", "the token has expired")
        if age < -60:
            raise Refused("7016", "the token's timestamp is in the future")
        if token["hash"] != _hash(self.access_key, token):
            raise Refused("7019", "hash mismatch")
        try:
            policy = json.loads(_decrypt(token["policy"], self.site_key))
        except (binascii.Error, ValueError):
            raise Refused("7008", "the policy does not decrypt with the site key") from None
        check_policy(policy)
        return {**token, "policy": policy}


def _answer(drm: str, payload: bytes, response_format: str) -> web.Response:
    if drm == "widevine":
        text = payload.hex()
    elif drm == "fairplay":
        text = base64.b64encode(payload).decode()
    else:
        text = payload.decode("utf-8")
    if response_format == "json":
        return web.json_response({"license": text, "device_info": {"device_id": DEVICE_ID}})
    if drm == "fairplay":
        return web.Response(text=text, content_type="text/plain")
    content_type = "text/xml" if drm == "playready" else "application/octet-stream"
    return web.Response(body=payload, content_type=content_type)


def make_app(site_id: str, site_key: str, access_key: str) -> web.Application:
    """The emulator for one site: its id, and its site and access keys (the console's text)."""
    site = Site(site_id, site_key, access_key)
    app = new_app(_reject)

    async def acquire(request: web.Request) -> web.StreamResponse:
        entry = await record(request)
        header = request.headers.get(TOKEN_NAME)
        query = request.query.get(TOKEN_NAME)
        try:
            if header and query:
                raise Refused("7016", "give the token in one place only")
            if not (header or query):
                raise Refused("7010", "no license token")
            drm, challenge = _body_drm(request, entry.body)
            token = site.check_token(header or query or "", drm)
        except Refused as refused:
            violation(request, refused.message)
            return _error(refused.code, refused.message)
        entry.decoded.update(token)
        response_format = token.get("response_format", "original")
        kind = widevine_request_type(challenge) if drm == "widevine" else RequestType.NEW
        if challenge == b"\x08\x04" or kind is RequestType.SERVICE_CERTIFICATE:
            return _answer(drm, SERVICE_CERTIFICATE, response_format)
        facts = {
            "vendor": "doverunner",
            "drm": drm,
            "request_type": "renewal" if kind is RequestType.RENEWAL else "new",
            "cid": token["cid"],
            "user": token["user_id"],
            "policy": token["policy"],
        }
        license_bytes, _ = license_for(drm, facts)
        return _answer(drm, license_bytes, response_format)

    app.router.add_post(PATH, acquire)
    return app


def url(base: str) -> str:
    """The license URL of an emulator served at ``base``."""
    return base + PATH


__all__ = ["STATE", "Site", "check_policy", "make_app", "url"]
