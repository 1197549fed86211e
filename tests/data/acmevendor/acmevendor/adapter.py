"""Acme DRM's license service: the challenge in signed JSON, the license in JSON."""

from __future__ import annotations

import hashlib
import hmac
from typing import Any

from proxy import (
    DrmSystem,
    Secret,
    UpstreamRequest,
    UpstreamResponse,
    UpstreamSettings,
    VendorCall,
    VendorLicense,
    b64,
    b64decode_any,
    bad_response,
    check_license,
    json_bytes,
    json_message,
    json_object,
    key_material,
    status_error,
)

VENDOR = "acme"


class AcmeSettings(UpstreamSettings):
    """``[backends.NAME]`` with ``vendor = "acme"``."""

    url: str
    """The license service URL."""
    key: Secret
    """The 32-byte signing key (hex text) by reference."""


class AcmeAdapter:
    """Signs the challenge for Acme and unwraps its answer (no policy rule is rendered)."""

    drm_systems = frozenset({DrmSystem.WIDEVINE})

    def __init__(self, name: str, settings: AcmeSettings, services: Any) -> None:
        self.settings = settings
        self.key = key_material(settings.key, "key", lengths=(32,), encodings=("hex",))

    def build_request(self, call: VendorCall) -> UpstreamRequest:
        """``{"challenge", "content_id"}`` with its HMAC in ``X-Acme-Signature``."""
        body = json_bytes({"challenge": b64(call.challenge.payload), "content_id": call.content_id})
        signature = hmac.new(self.key, body, hashlib.sha256).hexdigest()
        headers = {"Content-Type": "application/json", "X-Acme-Signature": signature}
        return UpstreamRequest(url=self.settings.url, body=body, headers=headers)

    def parse_response(self, call: VendorCall, response: UpstreamResponse) -> VendorLicense:
        """The license in ``{"license"}``, or the error Acme's status and message say."""
        if response.status != 200:
            raise status_error(VENDOR, response, message=json_message(response.body))
        doc = json_object(VENDOR, response)
        try:
            body = b64decode_any(doc.get("license", ""))
        except ValueError:
            raise bad_response(VENDOR, "has no base64 license") from None
        return VendorLicense(check_license(VENDOR, DrmSystem.WIDEVINE, body), None, call.key_ids)
