"""The ``keyos`` vendor: BuyDRM KeyOS (Widevine, PlayReady, FairPlay).

For each request the proxy mints a KeyOS Authentication XML from the elected
policy (:mod:`~plugins.vendors.keyos.authxml`), signs it with the tenant's RSA key
and sends it base64-encoded in the ``customdata`` header (or
``x-keyos-authorization``) beside the challenge (VENDOR_FACTS 12).

Framing: Widevine and PlayReady go raw, both ways. FairPlay goes as the form
``spc=<base64 SPC>&assetId=<asset id>`` and comes back as ``<ckc>base64</ckc>``,
which the player gets raw. Errors: the JSON ``{"errorcode", "errormsg", "errorid"}``
(the v4 endpoint's form; 401 and 403 refusals), PlayReady SOAP faults, else the
HTTP status.
"""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import urlencode

from plugins.vendors.keyos import authxml
from plugins.vendors.keyos.fairplay import asset_id
from plugins.vendors.keyos.settings import KEYOS_DRMS, KeyOSSettings, load_signing_key
from proxy import (
    OCTET_STREAM,
    PLAYREADY_SOAP_ACTION,
    DrmSystem,
    ProxyError,
    Reason,
    UpstreamRequest,
    UpstreamResponse,
    VendorCall,
    VendorLicense,
    b64,
    b64decode_any,
    bad_response,
    check_license,
    playready_fault_error,
    prepare,
    random_uuid,
    scrub,
    status_error,
)

VENDOR = "keyos"


class KeyOSAdapter:
    """Mints signed KeyOS Authentication XML per request and reads KeyOS's answers."""

    def __init__(self, name: str, settings: KeyOSSettings, services: Any) -> None:
        self.name = name
        self.settings = settings
        self.clock = services.clock
        self.key = load_signing_key(settings)
        self.renderings = settings.effective_renderings(
            VENDOR, authxml.renderings(settings), KEYOS_DRMS
        )
        self.drm_systems = frozenset(settings.urls) & KEYOS_DRMS

    def authentication_xml(self, call: VendorCall) -> tuple[str, str]:
        """The header value (base64 of the signed Authentication XML) and its ``UniqueId``."""
        drm = call.challenge.drm_system
        settings = prepare(call, self.renderings[drm], VENDOR, self.clock.time())
        unique_id = random_uuid().hex
        data = authxml.data_element(call, settings, self.settings, self.clock.time(), unique_id)
        data_xml = authxml.serialize(data)
        signature = authxml.sign(
            self.key, data_xml, self.settings.signature_digest, self.settings.signed_content
        )
        return authxml.token(data_xml, signature), unique_id

    def build_request(self, call: VendorCall) -> UpstreamRequest:
        """The challenge in KeyOS's framing, the Authentication XML in its header."""
        drm = call.challenge.drm_system
        if drm not in self.drm_systems:
            raise ProxyError(
                Reason.DRM_NOT_SUPPORTED, f"backend {call.backend!r} has no {drm.value} URL"
            )
        body = call.challenge.payload
        headers = {"Content-Type": OCTET_STREAM}
        if drm is DrmSystem.FAIRPLAY:
            form = {"spc": b64(body)}
            if self.settings.fairplay_asset_id:
                asset = asset_id(call.content_id)
                if not asset:
                    raise ProxyError(
                        Reason.REQUEST_INVALID,
                        "KeyOS takes the FairPlay asset id: send content_id (the skd:// key URI)",
                    )
                form["assetId"] = asset
            body = urlencode(form).encode("ascii")
            headers = {"Content-Type": self.settings.fairplay_content_type}
        elif drm is DrmSystem.PLAYREADY:
            headers = {
                "Content-Type": self.settings.playready_content_type,
                "SOAPAction": PLAYREADY_SOAP_ACTION,
            }
        token, unique_id = self.authentication_xml(call)
        headers[self.settings.auth_header] = token
        call.ctx.note(f"KeyOS Authentication XML {unique_id}")
        return UpstreamRequest(url=self.settings.urls[drm], body=body, headers=headers)

    def parse_response(self, call: VendorCall, response: UpstreamResponse) -> VendorLicense:
        """The raw license (the CKC unwrapped), or the error KeyOS's answer describes."""
        drm = call.challenge.drm_system
        if response.status != 200:
            if drm is DrmSystem.PLAYREADY:
                fault = playready_fault_error(VENDOR, response)
                if fault is not None:
                    raise fault
            raise _error(response)
        body = response.body
        if drm is DrmSystem.FAIRPLAY:
            return VendorLicense(unwrap_ckc(body, response.status), None, call.key_ids, {})
        return VendorLicense(check_license(VENDOR, drm, body), None, call.key_ids, {})


def unwrap_ckc(body: bytes, status: int) -> bytes:
    """The CKC in ``<ckc>base64</ckc>`` (bare base64 taken too, as THEOplayer's sample does:
    it strips the tags when they are there, then decodes)."""
    text = body.strip()
    if text[:5].lower() == b"<ckc>" and text[-6:].lower() == b"</ckc>":
        text = text[5:-6]
    try:
        ckc = b64decode_any(b"".join(text.split()).decode("ascii"))
    except (ValueError, UnicodeDecodeError):
        raise bad_response(VENDOR, "is not a base64 CKC in <ckc>", status) from None
    if not ckc:
        raise bad_response(VENDOR, "has an empty CKC", status)
    return ckc


def _error(response: UpstreamResponse) -> ProxyError:
    """KeyOS's JSON error (``errorcode``, ``errormsg``, ``errorid``), else the HTTP status."""
    doc = _json_error(response.body)
    code = doc.get("errorcode")
    message = doc.get("errormsg")
    error = status_error(
        VENDOR,
        response,
        code=str(code) if isinstance(code, int | str) and str(code) else None,
        message=message if isinstance(message, str) else None,
    )
    error_id = doc.get("errorid")
    if isinstance(error_id, str | int) and str(error_id):
        error.metadata["vendor_error_id"] = scrub(str(error_id), 64)
    return error


def _json_error(body: bytes) -> dict[str, Any]:
    try:
        doc = json.loads(body[:4096])
    except (ValueError, UnicodeDecodeError, RecursionError):
        return {}
    return doc if isinstance(doc, dict) else {}
