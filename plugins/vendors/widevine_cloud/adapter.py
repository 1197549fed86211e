"""The ``widevine_cloud`` vendor: Google's Widevine license proxy API (``getlicense``).

The proxy posts ``{"request", "signature", "signer"}``: ``request`` is the
base64 of the inner JSON message (``payload`` = the CDM's challenge,
``provider``, ``content_id``, the track selection and ``policy_overrides``
rendered from the policy), serialized once; ``signature`` is the base64 of
AES-CBC(provider key, IV, PKCS#7(SHA-1(those exact bytes))). The answer is
JSON at HTTP 200 even for refusals: ``status`` other than ``OK`` is an error,
and ``license`` is base64-decoded for the player.
"""

from __future__ import annotations

import hashlib
from typing import Any

from cryptography.hazmat.primitives import padding
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

from plugins.vendors.widevine_cloud.settings import WidevineCloudSettings
from proxy import (
    WIDEVINE_RENDERING,
    WIDEVINE_TRANSIENT_STATUSES,
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
    check_widevine_answer,
    json_bytes,
    json_message,
    json_object,
    key_material,
    prepare,
    scrub,
    status_error,
    vendor_error,
    widevine_content_id,
    widevine_policy_overrides,
    widevine_track_selection,
)

VENDOR = "widevine_cloud"
TRANSIENT_STATUSES = WIDEVINE_TRANSIENT_STATUSES
#: Answer fields worth keeping in ``vendor_metadata``.
KEPT_FIELDS = ("security_level", "system_id", "make", "model", "platform", "internal_status")
#: Every Widevine rule reaches Google, in its own vocabulary.
RENDERINGS = {DrmSystem.WIDEVINE: WIDEVINE_RENDERING}


class RequestSigner:
    """The provider's AES key and IV, the cipher prepared once (at start)."""

    __slots__ = ("_cipher",)

    def __init__(self, key: bytes, iv: bytes) -> None:
        self._cipher = Cipher(algorithms.AES(key), modes.CBC(iv))

    def sign(self, message: bytes) -> bytes:
        """AES-CBC with PKCS#7 padding over the SHA-1 of ``message`` (32 bytes out)."""
        padder = padding.PKCS7(128).padder()
        padded = padder.update(hashlib.sha1(message).digest()) + padder.finalize()  # noqa: S324 - the API's scheme
        encryptor = self._cipher.encryptor()
        return encryptor.update(padded) + encryptor.finalize()


def sign_request(message: bytes, key: bytes, iv: bytes) -> bytes:
    """The signature of ``message`` in one call (:class:`RequestSigner`)."""
    return RequestSigner(key, iv).sign(message)


class WidevineCloudAdapter:
    """Builds signed getlicense requests and reads their JSON answers."""

    drm_systems = frozenset({DrmSystem.WIDEVINE})
    renderings = RENDERINGS

    def __init__(self, name: str, settings: WidevineCloudSettings, services: Any) -> None:
        self.name = name
        self.settings = settings
        self.clock = services.clock
        self.signer: RequestSigner | None = None
        if settings.sign:
            assert settings.signing_key is not None and settings.signing_iv is not None
            key = key_material(
                settings.signing_key,
                "signing_key",
                lengths=(16, 24, 32),
                encodings=("hex", "base64"),
            )
            iv = key_material(
                settings.signing_iv, "signing_iv", lengths=(16,), encodings=("hex", "base64")
            )
            self.signer = RequestSigner(key, iv)

    def message(self, call: VendorCall) -> dict[str, Any]:
        """The inner request message for ``call``."""
        doc: dict[str, Any] = {
            "payload": b64(call.challenge.payload),
            "provider": self.settings.provider,
        }
        if call.challenge.request_type is RequestType.SERVICE_CERTIFICATE:
            return doc
        content_id = widevine_content_id(call)
        if content_id:
            doc["content_id"] = b64(content_id)
        settings = prepare(call, WIDEVINE_RENDERING, VENDOR, self.clock.time())
        if self.settings.policy_name:
            doc["policy_name"] = self.settings.policy_name
        doc.update(widevine_track_selection(call.policy))
        overrides = widevine_policy_overrides(settings)
        if overrides:
            doc["policy_overrides"] = overrides
        if self.settings.use_policy_overrides_exclusively is not None:
            doc["use_policy_overrides_exclusively"] = self.settings.use_policy_overrides_exclusively
        return doc

    def envelope(self, call: VendorCall) -> dict[str, str]:
        """``{request, signature, signer}``: the signature covers the exact ``request`` bytes."""
        inner = json_bytes(self.message(call))
        doc = {"request": b64(inner), "signer": self.settings.provider}
        if self.signer is not None:
            doc["signature"] = b64(self.signer.sign(inner))
        return doc

    def build_request(self, call: VendorCall) -> UpstreamRequest:
        """The getlicense POST for ``call``."""
        if call.challenge.drm_system is not DrmSystem.WIDEVINE:
            raise ProxyError(Reason.DRM_NOT_SUPPORTED, "the Widevine cloud issues Widevine only")
        return UpstreamRequest(
            url=self.settings.url,
            body=json_bytes(self.envelope(call)),
            headers={"Content-Type": "application/json"},
        )

    def parse_response(self, call: VendorCall, response: UpstreamResponse) -> VendorLicense:
        """The decoded license, or the error its ``status`` names (HTTP 200 included)."""
        if response.status != 200:
            raise status_error(VENDOR, response, message=json_message(response.body))
        doc = json_object(VENDOR, response)
        status = doc.get("status")
        if not isinstance(status, str):
            raise bad_response(VENDOR, "has no status")
        if status != "OK":
            reason = (
                Reason.UPSTREAM_UNAVAILABLE
                if status in TRANSIENT_STATUSES
                else Reason.UPSTREAM_REJECTED
            )
            error = vendor_error(
                reason,
                VENDOR,
                f"the Widevine license service answered {scrub(status, 64)}",
                status=response.status,
                code=status,
                message=doc.get("status_message")
                if isinstance(doc.get("status_message"), str)
                else None,
            )
            if "internal_status" in doc:
                error.metadata["vendor_internal_status"] = scrub(str(doc["internal_status"]), 32)
            raise error
        license_b64 = doc.get("license")
        if not isinstance(license_b64, str) or not license_b64:
            raise bad_response(VENDOR, "has no license")
        try:
            body = b64decode_any(license_b64)
        except ValueError:
            raise bad_response(VENDOR, "has a license that is not base64") from None
        check_widevine_answer(VENDOR, body)
        metadata = {
            f"widevine.{name}": scrub(str(doc[name]), 64)
            for name in KEPT_FIELDS
            if isinstance(doc.get(name), str | int) and name != "internal_status"
        }
        license_metadata = doc.get("license_metadata")
        if isinstance(license_metadata, dict) and isinstance(
            license_metadata.get("license_type"), str
        ):
            metadata["widevine.license_type"] = scrub(license_metadata["license_type"], 32)
        return VendorLicense(body, None, call.key_ids, metadata)
