"""The ``ezdrm`` vendor: EZDRM's license services (Widevine, PlayReady, FairPlay).

What authorizes a request at EZDRM is the URL (VENDOR_FACTS 11): Widevine and
PlayReady take the tenant's per-DRM profile in the ``pX`` query parameter, FairPlay
names the content in its path; no header token is documented. The license rules
live in the profile at EZDRM, so the proxy "mints" by choosing the profile: the
elected policy's own ``pX`` (``policy_px``), else the backend's. Nothing of the
policy travels in the request (:data:`RENDERINGS`): a backend says the profile
enforces it with ``policy_enforced_by_vendor``.

Framing: the raw challenge in and the raw license out for every DRM; FairPlay is the
raw SPC (``application/octet-stream``) to ``/api/licenses/<content id>`` and the
raw CKC back. EZDRM's error forms are UNVERIFIED: a PlayReady SOAP fault gives its
``StatusCode``; any other non-200 answer is judged by its HTTP status, its body
going to the log only.
"""

from __future__ import annotations

import base64
from typing import Any
from urllib.parse import quote, urlencode

from plugins.vendors.ezdrm import fairplay
from plugins.vendors.ezdrm.settings import PX_DRMS, EzdrmSettings
from proxy import (
    OCTET_STREAM,
    PLAYREADY_SOAP_ACTION,
    DrmSystem,
    ProxyError,
    Reason,
    Rendering,
    UpstreamRequest,
    UpstreamResponse,
    VendorCall,
    VendorLicense,
    bad_response,
    check_license,
    playready_fault_error,
    prepare,
    status_error,
)

VENDOR = "ezdrm"
EZDRM_DRMS = frozenset({DrmSystem.WIDEVINE, DrmSystem.PLAYREADY, DrmSystem.FAIRPLAY})
_PROFILE_HINT = (
    "EZDRM's license rules live in the pX profile at EZDRM, and nothing of the policy "
    "travels in the request: set policy_enforced_by_vendor on the backend when the "
    "profile enforces this (map the policy to its own profile in policy_px)"
)
#: What an EZDRM request carries of the policy, per DRM: nothing (the profile decides).
RENDERINGS = {drm: Rendering(hints={"default": _PROFILE_HINT}) for drm in EZDRM_DRMS}
#: How a body that is certainly no CKC begins: markup, JSON or a text error.
_NOT_A_CKC = (b"<", b"{", b"[")


class EzdrmAdapter:
    """Builds EZDRM license requests (the profile in the URL) and reads EZDRM's answers."""

    def __init__(self, name: str, settings: EzdrmSettings, services: Any) -> None:
        self.name = name
        self.settings = settings
        self.renderings = settings.effective_renderings(VENDOR, RENDERINGS, EZDRM_DRMS)
        self.clock = services.clock
        self.drm_systems = settings.served()
        self.custom_data = (
            base64.b64encode(settings.custom_data.value).decode("ascii")
            if settings.custom_data is not None
            else None
        )

    def url(self, call: VendorCall) -> str:
        """The license URL: the profile (``pX``) and the optional parameters, or for FairPlay
        the content id in the path."""
        drm = call.challenge.drm_system
        base = self.settings.urls[drm]
        if drm is DrmSystem.FAIRPLAY:
            content_id = fairplay.content_id(call.content_id)
            if not content_id:
                raise ProxyError(
                    Reason.REQUEST_INVALID,
                    "EZDRM's FairPlay URL names the content: send content_id "
                    "(the skd:// key URI, skd://fps.ezdrm.com/;<KID GUID>)",
                )
            return base.replace("{content_id}", quote(content_id, safe=""))
        profile = self.settings.profile(drm, call.policy.name)
        assert profile is not None, "served() lists only DRMs with a pX"
        query = [("pX", profile)]
        if self.custom_data is not None and drm in self.settings.custom_data_drms:
            query.append(("CustomData", self.custom_data))
        subject = call.principal.subject
        if self.settings.user_id_param and subject:
            query.append((self.settings.user_id_param, subject))
        return base + ("&" if "?" in base else "?") + urlencode(query)

    def build_request(self, call: VendorCall) -> UpstreamRequest:
        """The challenge as the CDM made it, to the profile's URL."""
        drm = call.challenge.drm_system
        if drm not in self.drm_systems:
            raise ProxyError(
                Reason.DRM_NOT_SUPPORTED,
                f"backend {call.backend!r} has no {drm.value} URL and profile",
            )
        prepare(call, self.renderings[drm], VENDOR, self.clock.time())
        headers = {"Content-Type": OCTET_STREAM}
        if drm is DrmSystem.PLAYREADY:
            headers = {
                "Content-Type": self.settings.playready_content_type,
                "SOAPAction": PLAYREADY_SOAP_ACTION,
            }
        return UpstreamRequest(url=self.url(call), body=call.challenge.payload, headers=headers)

    def parse_response(self, call: VendorCall, response: UpstreamResponse) -> VendorLicense:
        """The raw license or CKC, or the error a SOAP fault or the HTTP status describes."""
        drm = call.challenge.drm_system
        if response.status != 200:
            if drm is DrmSystem.PLAYREADY:
                fault = playready_fault_error(VENDOR, response)
                if fault is not None:
                    raise fault
            raise status_error(VENDOR, response)
        body = check_license(VENDOR, drm, response.body)
        if drm is DrmSystem.FAIRPLAY and body.lstrip()[:1] in _NOT_A_CKC:
            raise bad_response(VENDOR, "is not a raw CKC", response.status)
        metadata: dict[str, str] = {}
        if drm in PX_DRMS:
            profile = self.settings.profile(drm, call.policy.name)
            if profile:
                metadata["ezdrm.px"] = profile
        return VendorLicense(body, None, call.key_ids, metadata)
