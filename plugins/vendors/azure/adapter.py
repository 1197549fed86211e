"""The ``azure`` vendor: Azure Media Services key delivery, and MK.IO, which keeps its API.

The license URL comes per DRM from a template with ``{kid}`` (the first key
id as a GUID) and ``{content_id}``. The proxy mints the JWT the content key
policy's token restriction checks (``iss``, ``aud``, HS256 with the symmetric
key or RS256 with a private key, both by reference; the required claims,
``urn:microsoft:azure:mediaservices:contentkeyidentifier`` = the key id among
them), or passes the customer's token through; it travels as
``Authorization: Bearer`` (or the ``token`` query parameter).

FairPlay goes as the form ``spc=<base64>[&assetId=…]`` and comes back as
``<ckc>base64</ckc>``. A backend that takes Widevine requests in the JSON
license-template form (seed 000) gets the challenge as ``payload`` beside
``policy_overrides`` and the track selection rendered from the policy.
"""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import quote, urlencode

from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.hazmat.primitives.serialization import load_pem_private_key

from plugins.vendors.azure.settings import AzureSettings
from plugins.vendors.azure.template import (
    AZURE_DRMS,
    VENDOR,
    renderings,
    template_answer,
    widevine_template,
)
from proxy import (
    OCTET_STREAM,
    PLAYREADY_CONTENT_TYPE,
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
    guid,
    json_bytes,
    json_message,
    key_material,
    playready_fault_error,
    prepare,
    status_error,
)

CONTENT_KEY_CLAIM = "urn:microsoft:azure:mediaservices:contentkeyidentifier"
MAX_USES_CLAIM = "urn:microsoft:azure:mediaservices:maxuses"
_CKC = re.compile(rb"<ckc>\s*([A-Za-z0-9+/=_-]+)\s*</ckc>", re.IGNORECASE)


class AzureAdapter:
    """Builds Azure/MK.IO key-delivery requests and reads their answers."""

    def __init__(self, name: str, settings: AzureSettings, services: Any) -> None:
        self.name = name
        self.settings = settings
        self.clock = services.clock
        self.drm_systems = frozenset(settings.urls) & AZURE_DRMS
        self.renderings = settings.effective_renderings(VENDOR, renderings(settings), AZURE_DRMS)
        self.signer: JwsSigner | None = None
        if settings.bearer == "mint":
            assert settings.signing_key is not None
            key: Any
            if settings.algorithm == "HS256":
                # Azure's symmetric keys are base64 bytes (64 in its samples); allow 16-256.
                key = key_material(settings.signing_key, "signing_key", lengths=range(16, 257))
            else:
                try:
                    key = load_pem_private_key(settings.signing_key.value, password=None)
                except (ValueError, TypeError):
                    raise ValueError(
                        f"signing_key ({settings.signing_key.reference}) is not an unencrypted "
                        "PEM private key"
                    ) from None
                if not isinstance(key, rsa.RSAPrivateKey) or key.key_size < 2048:
                    raise ValueError("signing_key: RS256 needs an RSA key of 2048 bits or more")
            headers = {"kid": settings.key_id} if settings.key_id else None
            self.signer = JwsSigner(settings.algorithm, key, headers=headers)

    def claims(self, call: VendorCall) -> dict[str, Any]:
        """The claims of the minted token."""
        settings = self.settings
        now = int(self.clock.time())
        claims: dict[str, Any] = {
            "iss": settings.issuer,
            "aud": settings.audience,
            "iat": now,
            "nbf": now,
            "exp": now + int(settings.token_lifetime),
        }
        if settings.content_key_identifier and call.key_ids:
            claims[CONTENT_KEY_CLAIM] = guid(call.key_ids[0])
        if settings.max_uses is not None:
            claims[MAX_USES_CLAIM] = settings.max_uses
        for name in settings.forward_claims:
            if name in call.principal.claims:
                claims[name] = call.principal.claims[name]
        claims.update(settings.claims)
        if settings.policy_claim:
            claims[settings.policy_claim] = call.policy.name
        return claims

    def token(self, call: VendorCall) -> str:
        """The token for key delivery: minted, or the customer's own."""
        if self.settings.bearer == "passthrough":
            token = call.principal.token
            if not token:
                raise ProxyError(
                    Reason.INTERNAL, "token passthrough is on but the request's token is unknown"
                )
            return token
        assert self.signer is not None  # minted tokens have one, built with the adapter
        return self.signer.sign(self.claims(call))

    def url(self, call: VendorCall) -> str:
        """The license URL from the DRM's template."""
        drm = call.challenge.drm_system
        template = self.settings.urls.get(drm)
        request_type = call.challenge.request_type
        certificate = request_type is RequestType.SERVICE_CERTIFICATE
        existing = request_type in (RequestType.RENEWAL, RequestType.RELEASE)
        if not call.key_ids:
            if certificate and self.settings.service_certificate_url:
                return self.settings.service_certificate_url
            if existing and self.settings.renewal_url:
                return self.settings.renewal_url
        if template is None:
            raise ProxyError(
                Reason.DRM_NOT_SUPPORTED, f"backend {call.backend!r} has no {drm.value} URL"
            )
        values = {"kid": "", "content_id": quote(call.content_id or "", safe="")}
        if "{kid}" in template:
            if not call.key_ids:
                alternative = (
                    " (or set service_certificate_url)"
                    if certificate
                    else " (or set renewal_url)"
                    if existing
                    else ""
                )
                raise ProxyError(
                    Reason.REQUEST_INVALID,
                    "this backend's license URL needs the key id: send a key_id hint" + alternative,
                )
            values["kid"] = guid(call.key_ids[0])
        if "{content_id}" in template and not call.content_id:
            raise ProxyError(
                Reason.REQUEST_INVALID,
                "this backend's license URL needs the content id: send content_id",
            )
        return template.format(**values)

    def build_request(self, call: VendorCall) -> UpstreamRequest:
        """The key-delivery request for ``call``."""
        drm = call.challenge.drm_system
        if drm not in self.drm_systems:
            raise ProxyError(
                Reason.DRM_NOT_SUPPORTED, f"backend {call.backend!r} has no {drm.value} URL"
            )
        settings = prepare(call, self.renderings[drm], VENDOR, self.clock.time())
        url = self.url(call)
        token = self.token(call)
        headers: dict[str, str] = {}
        if self.settings.bearer_in == "header":
            headers["Authorization"] = f"Bearer {token}"
        else:
            url += ("&" if "?" in url else "?") + urlencode({"token": token})
        body = call.challenge.payload
        if drm is DrmSystem.FAIRPLAY:
            form = {"spc": b64(body)}
            asset = fairplay_content_id(call.content_id) or (
                guid(call.key_ids[0]) if call.key_ids else None
            )
            if self.settings.fairplay_asset_id and asset:
                form["assetId"] = asset
            headers["Content-Type"] = "application/x-www-form-urlencoded"
            body = urlencode(form).encode("ascii")
        elif drm is DrmSystem.PLAYREADY:
            headers["Content-Type"] = PLAYREADY_CONTENT_TYPE
            headers["SOAPAction"] = PLAYREADY_SOAP_ACTION
        elif self.settings.widevine_request == "template":
            headers["Content-Type"] = "application/json"
            body = json_bytes(
                widevine_template(
                    call,
                    self.settings.widevine_provider,
                    self.settings.use_policy_overrides_exclusively,
                    settings,
                )
            )
        else:
            headers["Content-Type"] = OCTET_STREAM
        return UpstreamRequest(url=url, body=body, headers=headers)

    def parse_response(self, call: VendorCall, response: UpstreamResponse) -> VendorLicense:
        """The raw license (CKC unwrapped, template answers decoded), or a typed error."""
        drm = call.challenge.drm_system
        if response.status != 200:
            if drm is DrmSystem.PLAYREADY:
                fault = playready_fault_error(VENDOR, response)
                if fault is not None:
                    raise fault
            # Azure's error body format is UNVERIFIED: only a JSON message field is shown.
            code = "Unauthorized" if response.status == 401 else None
            raise status_error(VENDOR, response, code=code, message=json_message(response.body))
        body = response.body
        if drm is DrmSystem.FAIRPLAY:
            match = _CKC.search(body)
            if match is None:
                raise bad_response(VENDOR, "has no <ckc> element")
            try:
                body = b64decode_any(match.group(1).decode("ascii"))
            except ValueError:
                raise bad_response(VENDOR, "has a <ckc> that is not base64") from None
            return VendorLicense(body, None, call.key_ids, {})
        if drm is DrmSystem.WIDEVINE and body[:1] == b"{":
            body = template_answer(response)
        return VendorLicense(check_license(VENDOR, drm, body), None, call.key_ids, {})
