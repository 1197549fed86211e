"""The ``doverunner`` vendor: DoveRunner Multi-DRM, formerly PallyCon (Widevine, PlayReady, FairPlay).

The proxy is the site's token server: for each request it renders the elected
policy as a policy JSON v2, encrypts it with the site key, and sends the license
token (``drm_type``, ``site_id``, ``user_id``, ``cid``, ``policy``,
``response_format``, ``key_rotation``, ``timestamp``, ``hash``) base64-encoded
in ``pallycon-customdata-v2`` beside the challenge: Widevine and PlayReady raw
(``application/octet-stream``, as DoveRunner's own proxies send them), FairPlay
as the form ``spc=<percent-encoded base64>``.

Answers: with ``response_format = "json"`` a JSON object whose ``license`` is hex
(Widevine) or text (PlayReady's SOAP, FairPlay's base64 CKC) and whose
``device_info.device_id`` goes to ``vendor_metadata``; with ``original`` the
DRM's own answer (FairPlay base64). Errors: ``{"errorCode", "message"}``, at HTTP
200 too (:mod:`~plugins.vendors.doverunner.errors`).
"""

from __future__ import annotations

import binascii
import re
from typing import Any
from urllib.parse import quote, urlencode

from plugins.vendors.doverunner.errors import error_document, failure
from plugins.vendors.doverunner.policy import DOVERUNNER_DRMS, VENDOR, policy_v2, renderings
from plugins.vendors.doverunner.settings import DoveRunnerSettings
from plugins.vendors.doverunner.token import (
    DRM_TYPES,
    PolicyCipher,
    compact,
    encode_token,
    license_token,
    timestamp,
)
from proxy import (
    OCTET_STREAM,
    VENDOR_DEVICE_PREFIX,
    DrmSystem,
    ProxyError,
    Reason,
    RequestType,
    UpstreamRequest,
    UpstreamResponse,
    VendorCall,
    VendorLicense,
    b64,
    b64decode_any,
    bad_response,
    check_playready_answer,
    check_widevine_answer,
    fairplay_content_id,
    json_object,
    key_material,
    prepare,
    scrub,
)

TOKEN_HEADER = "pallycon-customdata-v2"  # noqa: S105 - a header name
#: ``user_id`` when the token names no user, as DoveRunner documents.
NO_USER = "LICENSETOKEN"
MAX_CID_BYTES = 200
_FACT = re.compile(r"^[\w .:/+=,()-]{1,128}$")
_HEX = re.compile(rb"^(?:[0-9a-fA-F]{2})+$")


def _text_key(secret: Any, what: str) -> bytes:
    """A 32-character console key, used as its own bytes (never decoded)."""
    return key_material(secret, what, lengths=(32,), encodings=())


class DoveRunnerAdapter:
    """Mints the license token with the encrypted policy v2 and reads DoveRunner's answers."""

    drm_systems = DOVERUNNER_DRMS

    def __init__(self, name: str, settings: DoveRunnerSettings, services: Any) -> None:
        self.name = name
        self.settings = settings
        self.clock = services.clock
        self.cipher = PolicyCipher(_text_key(settings.site_key, "site_key"))
        try:
            self.access_key = _text_key(settings.access_key, "access_key").decode("ascii")
        except UnicodeDecodeError:
            raise ValueError(
                f"access_key ({settings.access_key.reference}) must be the 32-character text "
                "the console shows"
            ) from None
        self.renderings = renderings(settings)

    def _cid(self, call: VendorCall) -> str:
        challenge = call.challenge
        if challenge.drm_system is DrmSystem.FAIRPLAY:
            cid = fairplay_content_id(call.content_id)
        else:
            cid = call.content_id
        if not cid and challenge.request_type is RequestType.SERVICE_CERTIFICATE:
            cid = self.settings.service_certificate_content_id
        if not cid:
            raise ProxyError(
                Reason.REQUEST_INVALID,
                "DoveRunner needs the content id (cid): send content_id with the request",
            )
        if len(cid.encode("utf-8")) > MAX_CID_BYTES:
            raise ProxyError(
                Reason.REQUEST_INVALID,
                f"DoveRunner takes a content id (cid) of at most {MAX_CID_BYTES} bytes",
            )
        return cid

    def token(self, call: VendorCall) -> dict[str, Any]:
        """The license token JSON for ``call`` (its policy encrypted, its hash computed)."""
        drm = call.challenge.drm_system
        rendering = self.renderings[drm]
        settings = prepare(call, rendering, VENDOR, self.clock.time())
        if call.challenge.request_type is RequestType.SERVICE_CERTIFICATE:
            policy: dict[str, Any] = {"policy_version": 2}
        else:
            policy = policy_v2(settings, call.policy, drm, rendering, call.backend)
        subject = call.principal.subject
        return license_token(
            access_key=self.access_key,
            drm_type=DRM_TYPES[drm.value],
            site_id=self.settings.site_id,
            user_id=subject if subject and subject.strip() else NO_USER,
            cid=self._cid(call),
            policy=self.cipher.encrypt(compact(policy)),
            stamp=timestamp(self.clock.time()),
            response_format=self.settings.response_format,
            key_rotation=self.settings.key_rotation,
        )

    def build_request(self, call: VendorCall) -> UpstreamRequest:
        """The challenge in the DRM's framing, the license token in ``pallycon-customdata-v2``."""
        drm = call.challenge.drm_system
        if drm not in DOVERUNNER_DRMS:
            raise ProxyError(Reason.DRM_NOT_SUPPORTED, f"DoveRunner does not serve {drm.value}")
        token = encode_token(self.token(call))
        url = self.settings.url
        headers: dict[str, str] = {}
        if self.settings.custom_data_in == "header":
            headers[TOKEN_HEADER] = token
        else:
            url += ("&" if "?" in url else "?") + f"{TOKEN_HEADER}={quote(token, safe='')}"
        body = call.challenge.payload
        if drm is DrmSystem.FAIRPLAY:
            headers["Content-Type"] = "application/x-www-form-urlencoded"
            body = urlencode({"spc": b64(body)}).encode("ascii")
        else:
            headers["Content-Type"] = OCTET_STREAM
        return UpstreamRequest(url=url, body=body, headers=headers)

    def parse_response(self, call: VendorCall, response: UpstreamResponse) -> VendorLicense:
        """The raw license for the CDM, or the error its ``errorCode`` names."""
        drm = call.challenge.drm_system
        error = error_document(response.body)
        if error is not None or response.status != 200:
            raise failure(response, error)
        metadata: dict[str, str] = {}
        if self.settings.response_format == "json":
            body = self._json_answer(drm, response, metadata)
        else:
            body = _license(drm, response.body, response.status)
        return VendorLicense(body, None, call.key_ids, metadata)

    def _json_answer(
        self, drm: DrmSystem, response: UpstreamResponse, metadata: dict[str, str]
    ) -> bytes:
        doc = json_object(VENDOR, response)
        value = doc.get("license")
        if not isinstance(value, str) or not value:
            raise bad_response(VENDOR, "has no license", response.status)
        device = doc.get("device_info")
        device_id = device.get("device_id") if isinstance(device, dict) else None
        if isinstance(device_id, str | int) and not isinstance(device_id, bool):
            text = str(device_id)
            shown = text if _FACT.match(text) else scrub(text, 128)
            if shown:
                metadata["doverunner.device_id"] = shown
                metadata[VENDOR_DEVICE_PREFIX + "id"] = shown
        raw = value.encode("utf-8")
        if drm is DrmSystem.WIDEVINE:
            if not _HEX.match(raw):
                raise bad_response(
                    VENDOR, "has a Widevine license that is not hex", response.status
                )
            raw = bytes.fromhex(value)
        return _license(drm, raw, response.status)


def _license(drm: DrmSystem, body: bytes, status: int) -> bytes:
    """The bytes the CDM takes: Widevine and PlayReady as they are (PlayReady may come
    base64-encoded: which form DoveRunner sends is UNVERIFIED, both are read), FairPlay
    base64-decoded."""
    if drm is DrmSystem.WIDEVINE:
        return check_widevine_answer(VENDOR, body, status)
    if drm is DrmSystem.PLAYREADY:
        if body.lstrip()[:1] != b"<":
            try:
                body = b64decode_any(body.decode("ascii"))
            except (ValueError, UnicodeDecodeError, binascii.Error):
                raise bad_response(VENDOR, "is not a PlayReady license", status) from None
        return check_playready_answer(VENDOR, body, status)
    try:
        ckc = b64decode_any(body.strip().decode("ascii"))
    except (ValueError, UnicodeDecodeError, binascii.Error):
        raise bad_response(VENDOR, "is not a base64 CKC", status) from None
    if not ckc:
        raise bad_response(VENDOR, "is empty", status)
    return ckc
