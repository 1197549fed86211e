"""The ``verimatrix`` vendor: Verimatrix Multi-DRM (cloud) license servers.

The proxy mints the license-server JWT itself, per request: signed with the
Service Access Key's private half (ES256 by default) with its id in the
``kid`` header; ``aud`` as registered, ``sub`` = the content id, ``iat``,
``nbf`` and ``exp`` inside Verimatrix's short window (at most 120 s after
``iat``), a fresh ``jti``; optionally ``subscriber`` and ``device``; and the
elected policy as ``security_policy`` objects assigned per track type
(``track_type_policy``), per key (``track_policy``) or by default
(``default_security_policy``), as seed 004 names them.

The token travels in ``Authorization``: raw by default (what public
integrations send), ``Bearer`` on request. FairPlay is JSON ``{"spc"}`` in and
``{"ckc"}`` out. Errors carry MDRM codes; their body format is UNVERIFIED,
so the code is searched for anywhere in the body, and the code-to-reason
mapping is a table (:data:`MDRM_CODES`).
"""

from __future__ import annotations

from typing import Any

from plugins.vendors.verimatrix.claims import (
    VERIMATRIX_DRMS,
    license_policy,
    renderings,
    security_claims,
)
from plugins.vendors.verimatrix.mdrm import VENDOR, mdrm_error
from plugins.vendors.verimatrix.settings import VerimatrixSettings, load_private_key
from proxy import (
    OCTET_STREAM,
    PLAYREADY_SOAP_ACTION,
    DrmSystem,
    JwsSigner,
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
    check_license,
    fairplay_content_id,
    json_bytes,
    json_object,
    prepare,
    random_uuid,
)


class VerimatrixAdapter:
    """Mints Verimatrix license-server tokens and reads MDRM answers."""

    def __init__(self, name: str, settings: VerimatrixSettings, services: Any) -> None:
        self.name = name
        self.settings = settings
        self.clock = services.clock
        self.signer = JwsSigner(
            settings.algorithm, load_private_key(settings), headers={"kid": settings.key_id}
        )
        self.drm_systems = frozenset(settings.urls) & VERIMATRIX_DRMS
        self.renderings = renderings(settings)
        for drm, url in settings.urls.items():
            if not url.startswith(("https://", "http://")):
                raise ValueError(f"urls.{drm.value}: {url!r} is not an http(s) URL")

    def claims(self, call: VendorCall) -> dict[str, Any]:
        """The license-server token's claims for ``call``."""
        settings = self.settings
        drm = call.challenge.drm_system
        if drm not in self.drm_systems:
            raise ProxyError(
                Reason.DRM_NOT_SUPPORTED, f"backend {call.backend!r} has no {drm.value} URL"
            )
        license_settings = prepare(call, self.renderings[drm], VENDOR, self.clock.time())
        subject = call.content_id
        if drm is DrmSystem.FAIRPLAY:
            subject = fairplay_content_id(subject)
        if not subject:
            if call.challenge.request_type is RequestType.SERVICE_CERTIFICATE:
                subject = settings.service_certificate_subject
            else:
                raise ProxyError(
                    Reason.REQUEST_INVALID,
                    "Verimatrix needs the content id (its token's sub): send content_id",
                )
        now = int(self.clock.time())
        claims: dict[str, Any] = {
            "aud": settings.audience,
            "sub": subject,
            "iat": now,
            "nbf": now,
            "exp": now + int(settings.token_lifetime),
            "jti": str(random_uuid()),
        }
        if settings.issuer:
            claims["iss"] = settings.issuer
        if settings.payload_version is not None:
            claims["ver"] = settings.payload_version
        if settings.send_subscriber and call.principal.subject:
            claims["subscriber"] = call.principal.subject
        device = call.ctx.request.client.device_id
        if settings.send_device and device:
            claims["device"] = device
        if drm in settings.security_policy_drms:
            claims.update(security_claims(call.policy, drm, call.key_ids))
        if settings.policy_claim:
            policy = license_policy(license_settings, drm)
            if policy:
                claims["policy"] = policy
        return claims

    def token(self, call: VendorCall) -> str:
        """The signed license-server JWT."""
        return self.signer.sign(self.claims(call))

    def build_request(self, call: VendorCall) -> UpstreamRequest:
        """Raw challenge (Widevine, PlayReady) or ``{"spc"}`` JSON (FairPlay) with the token."""
        drm = call.challenge.drm_system
        url = self.settings.urls.get(drm)
        if url is None:
            raise ProxyError(
                Reason.DRM_NOT_SUPPORTED, f"backend {call.backend!r} has no {drm.value} URL"
            )
        token = self.token(call)
        authorization = token if self.settings.authorization == "raw" else f"Bearer {token}"
        headers = {"Authorization": authorization}
        body = call.challenge.payload
        if drm is DrmSystem.FAIRPLAY:
            headers["Content-Type"] = "application/json"
            body = json_bytes({"spc": b64(body)})
        elif drm is DrmSystem.PLAYREADY:
            headers["Content-Type"] = self.settings.playready_content_type
            headers["SOAPAction"] = PLAYREADY_SOAP_ACTION
        else:
            headers["Content-Type"] = OCTET_STREAM
        return UpstreamRequest(url=url, body=body, headers=headers)

    def parse_response(self, call: VendorCall, response: UpstreamResponse) -> VendorLicense:
        """The license (the CKC unwrapped), or the error its MDRM code stands for."""
        drm = call.challenge.drm_system
        if response.status != 200:
            raise mdrm_error(response, drm)
        if drm is DrmSystem.FAIRPLAY:
            doc = json_object(VENDOR, response)
            ckc = doc.get("ckc")
            if not isinstance(ckc, str) or not ckc:
                raise mdrm_error(response, drm, missing="ckc")
            try:
                body = b64decode_any(ckc)
            except ValueError:
                raise bad_response(VENDOR, "has a ckc that is not base64") from None
            return VendorLicense(body, None, call.key_ids, {})
        return VendorLicense(check_license(VENDOR, drm, response.body), None, call.key_ids, {})
