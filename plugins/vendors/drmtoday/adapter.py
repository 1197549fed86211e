"""The ``drmtoday`` vendor: castLabs DRMtoday (Widevine, PlayReady, FairPlay).

The proxy is the merchant's authorization service: for each request it renders
the elected policy as a Customer Rights Token, and sends it with the merchant and
user (``optData``) in an upfront ``x-dt-auth-token`` JWT signed with the shared
secret, beside the challenge in each DRM's framing: Widevine raw
(``application/octet-stream``), PlayReady as SOAP with its ``SOAPAction``, FairPlay
as the form ``spc=<percent-encoded base64>``.

Answers: Widevine as JSON ``{"status", "license", <device fields>}`` (or the raw
license with ``?specConform=true``), PlayReady the SOAP license, FairPlay the
base64 CKC as text; the player gets the raw bytes. Failures carry
``x-dt-resp-code`` (:mod:`~plugins.vendors.drmtoday.errors`). The device facts
DRMtoday returns (the Widevine JSON fields, ``x-dt-client-info``) go to
``vendor_metadata`` as ``drmtoday.*``.
"""

from __future__ import annotations

import binascii
import hashlib
import json
import re
from typing import Any
from urllib.parse import urlencode

from plugins.vendors.drmtoday.auth import auth_claims, auth_signer, compact, custom_data, opt_data
from plugins.vendors.drmtoday.crt import DRMTODAY_DRMS, VENDOR, customer_rights, renderings
from plugins.vendors.drmtoday.errors import failure
from plugins.vendors.drmtoday.settings import DrmTodaySettings
from proxy import (
    OCTET_STREAM,
    PLAYREADY_CONTENT_TYPE,
    PLAYREADY_SOAP_ACTION,
    VENDOR_DEVICE_PREFIX,
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
    check_playready_answer,
    check_widevine_answer,
    fairplay_content_id,
    json_object,
    key_material,
    prepare,
    random_uuid,
    scrub,
    vendor_error,
)
from proxy.policy import LicenseSettings

TOKEN_HEADER = "x-dt-auth-token"  # noqa: S105 - a header name
CLIENT_INFO_HEADER = "x-dt-client-info"
CSL_RENEWAL_HEADER = "x-dt-csl-renewal-info"
#: Widevine JSON answer fields kept in ``vendor_metadata`` (the Widevine proxy's device facts).
WIDEVINE_FIELDS = (
    "make",
    "model",
    "security_level",
    "platform",
    "system_id",
    "device_whitelist_state",
    "client_max_hdcp_version",
)
#: ``x-dt-client-info`` fields kept in ``vendor_metadata``.
CLIENT_INFO_FIELDS = (
    "manufacturer",
    "model",
    "secLevel",
    "drmVersion",
    "hdcpSupport",
    "vmpStatus",
    "vrConstraintSupport",
)
_CKC = re.compile(rb"<ckc>\s*([^<]*?)\s*</ckc>", re.IGNORECASE)
_FACT = re.compile(r"^[\w .:/+=,()-]{1,120}$")


def log_request_id(request_id: str) -> str:
    """``logRequestId``: 32 hex digits derived from the proxy's request id, so an operator
    holding one can tell castLabs the other."""
    return hashlib.sha256(request_id.encode("utf-8")).hexdigest()[:32]


def fact(value: Any) -> str | None:
    """A device fact as ``vendor_metadata`` keeps it: a short printable value, else nothing."""
    if isinstance(value, bool):
        value = str(value).lower()
    if isinstance(value, str | int | float):
        text = str(value)
        return text if _FACT.match(text) else scrub(text, 120) or None
    return None


class DrmTodayAdapter:
    """Mints the upfront token with the CRT for each request and reads DRMtoday's answers."""

    def __init__(self, name: str, settings: DrmTodaySettings, services: Any) -> None:
        self.name = name
        self.settings = settings
        self.clock = services.clock
        key = key_material(
            settings.auth_secret, "auth_secret", lengths=(32, 48, 64), encodings=("hex",)
        )
        self.signer = auth_signer(key, settings.auth_key_id, settings.auth_algorithm)
        self.renderings = renderings(settings)
        self.drm_systems = frozenset(settings.urls) & DRMTODAY_DRMS

    # -- the request -----------------------------------------------------------------

    def _asset(self, call: VendorCall) -> tuple[str | None, str | None]:
        """``assetId`` and ``variantId``: from a ``drmtoday`` FairPlay key URI, else the
        content id (FairPlay: without ``skd://`` and ``?query``)."""
        details = call.challenge.details
        asset = details.get("drmtoday_asset_id")
        variant = details.get("drmtoday_variant_id")
        if isinstance(asset, str) and asset:
            return asset, variant if isinstance(variant, str) and variant else None
        if call.challenge.drm_system is DrmSystem.FAIRPLAY:
            return fairplay_content_id(call.content_id), None
        return call.content_id or None, None

    def _user(self, call: VendorCall) -> tuple[str, str | None]:
        subject = call.principal.subject
        if not subject or not subject.strip():
            raise ProxyError(
                Reason.REQUEST_INVALID,
                "DRMtoday needs a user id (optData.userId): the token has no subject",
            )
        session = call.ctx.request.metadata.get("session_id")
        claim = self.settings.session_id_claim
        if not session and claim:
            value = call.principal.claims.get(claim)
            session = value if isinstance(value, str) else None
        return subject, session if session and session.strip() else None

    def token(self, call: VendorCall, settings: LicenseSettings) -> str:
        """The upfront authorization token for ``call`` (a fresh ``jti``; ``iat`` now)."""
        asset, variant = self._asset(call)
        user, session = self._user(call)
        crt = customer_rights(
            settings, call.policy, call.challenge.drm_system, self.settings, asset, variant
        )
        now = int(self.clock.time())
        claims = auth_claims(
            opt=opt_data(self.settings.merchant, user, session),
            crt=compact(crt),
            iat=now,
            exp=now + int(self.settings.token_lifetime),
            jti=str(random_uuid()),
        )
        return self.signer.sign(claims)

    def build_request(self, call: VendorCall) -> UpstreamRequest:
        """The challenge in the DRM's framing, the upfront token in ``x-dt-auth-token``."""
        drm = call.challenge.drm_system
        url = self.settings.urls.get(drm)
        if url is None or drm not in self.drm_systems:
            raise ProxyError(
                Reason.DRM_NOT_SUPPORTED, f"backend {call.backend!r} has no {drm.value} URL"
            )
        settings = prepare(call, self.renderings[drm], VENDOR, self.clock.time())
        headers = {TOKEN_HEADER: self.token(call, settings)}
        if self.settings.custom_data_header != "none":
            user, session = self._user(call)
            headers[self.settings.custom_data_header] = custom_data(
                self.settings.merchant, user, session
            )
        query: dict[str, str] = {}
        body = call.challenge.payload
        if drm is DrmSystem.WIDEVINE:
            headers["Content-Type"] = OCTET_STREAM
            if self.settings.widevine_spec_conform:
                query["specConform"] = "true"
        elif drm is DrmSystem.PLAYREADY:
            headers["Content-Type"] = PLAYREADY_CONTENT_TYPE
            headers["SOAPAction"] = PLAYREADY_SOAP_ACTION
        else:
            form = {"spc": b64(body)}
            if self.settings.fairplay_asset_in_body:
                asset, variant = self._asset(call)
                form.update({k: v for k, v in (("assetId", asset), ("variantId", variant)) if v})
            headers["Content-Type"] = "application/x-www-form-urlencoded"
            body = urlencode(form).encode("ascii")
        if self.settings.log_request_id:
            query["logRequestId"] = log_request_id(call.request_id)
        if query:
            url += ("&" if "?" in url else "?") + urlencode(query)
        return UpstreamRequest(url=url, body=body, headers=headers)

    # -- the answer ------------------------------------------------------------------

    def parse_response(self, call: VendorCall, response: UpstreamResponse) -> VendorLicense:
        """The raw license for the CDM, or the error ``x-dt-resp-code`` names."""
        drm = call.challenge.drm_system
        if response.status != 200:
            raise failure(drm, response)
        metadata = self._metadata(call, response)
        if drm is DrmSystem.WIDEVINE:
            body = self._widevine(response, metadata)
        elif drm is DrmSystem.PLAYREADY:
            body = check_playready_answer(VENDOR, response.body, response.status)
        else:
            body = _ckc(response)
        _device_facts(metadata)
        return VendorLicense(body, None, call.key_ids, metadata)

    def _widevine(self, response: UpstreamResponse, metadata: dict[str, str]) -> bytes:
        if response.body.lstrip()[:1] != b"{":
            return check_widevine_answer(VENDOR, response.body, response.status)
        doc = json_object(VENDOR, response)
        status = doc.get("status")
        if status != "OK":
            if not isinstance(status, str):
                raise bad_response(VENDOR, "has no status", response.status)
            raise vendor_error(
                Reason.UPSTREAM_REJECTED,
                VENDOR,
                f"DRMtoday's Widevine service answered {scrub(status, 64)}",
                status=response.status,
                code=status,
            )
        license_b64 = doc.get("license")
        try:
            body = b64decode_any(license_b64) if isinstance(license_b64, str) else b""
        except ValueError:
            raise bad_response(VENDOR, "has a license that is not base64") from None
        for name in WIDEVINE_FIELDS:
            value = fact(doc.get(name))
            if value:
                metadata[f"drmtoday.widevine.{name}"] = value
        return check_widevine_answer(VENDOR, body, response.status)

    def _metadata(self, call: VendorCall, response: UpstreamResponse) -> dict[str, str]:
        metadata: dict[str, str] = {}
        if self.settings.log_request_id:
            metadata["drmtoday.log_request_id"] = log_request_id(call.request_id)
        info = _b64_json(response.headers.get(CLIENT_INFO_HEADER))
        for name in CLIENT_INFO_FIELDS:
            value = fact(info.get(name))
            if value:
                metadata[f"drmtoday.client_info.{name}"] = value
        renewal = _b64_json(response.headers.get(CSL_RENEWAL_HEADER)).get("renewalPeriod")
        if isinstance(renewal, int) and not isinstance(renewal, bool):
            metadata["drmtoday.csl_renewal_period"] = str(renewal)
        return metadata


#: The vendor-neutral device facts (``device.*``, kept in the decision log) and where DRMtoday
#: gives each: ``x-dt-client-info`` first, the Widevine JSON answer's fields otherwise.
DEVICE_FACTS = {
    "make": ("drmtoday.client_info.manufacturer", "drmtoday.widevine.make"),
    "model": ("drmtoday.client_info.model", "drmtoday.widevine.model"),
    "security_level": ("drmtoday.client_info.secLevel", "drmtoday.widevine.security_level"),
}


def _device_facts(metadata: dict[str, str]) -> None:
    for name, sources in DEVICE_FACTS.items():
        for source in sources:
            if source in metadata:
                metadata[VENDOR_DEVICE_PREFIX + name] = metadata[source]
                break


def _b64_json(value: str | None) -> dict[str, Any]:
    """A header holding base64 JSON (``x-dt-client-info``), or ``{}`` when it holds none."""
    if not value or len(value) > 4096:
        return {}
    try:
        doc = json.loads(b64decode_any(value))
    except (ValueError, UnicodeDecodeError):
        return {}
    return doc if isinstance(doc, dict) else {}


def _ckc(response: UpstreamResponse) -> bytes:
    """The raw CKC from the base64 text DRMtoday answers with (a ``<ckc>`` wrapper, which
    some clients strip, is accepted: whether DRMtoday ever sends one is UNVERIFIED)."""
    text = response.body.strip()
    match = _CKC.search(text)
    if match is not None:
        text = match.group(1)
    try:
        ckc = b64decode_any(text.decode("ascii"))
    except (ValueError, UnicodeDecodeError, binascii.Error):
        raise bad_response(VENDOR, "is not a base64 CKC", response.status) from None
    if not ckc:
        raise bad_response(VENDOR, "is empty", response.status)
    return ckc


__all__ = ["DrmTodayAdapter", "fact", "log_request_id"]
