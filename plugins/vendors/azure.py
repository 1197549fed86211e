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
import string
from dataclasses import replace
from typing import Any, Literal
from urllib.parse import quote, urlencode

import jwt
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.hazmat.primitives.serialization import load_pem_private_key
from pydantic import Field, model_validator

from plugins.vendors import rendering, widevine_policy
from plugins.vendors.common import (
    OCTET_STREAM,
    PLAYREADY_CONTENT_TYPE,
    PLAYREADY_SOAP_ACTION,
    b64,
    b64decode_any,
    bad_response,
    check_license,
    fairplay_content_id,
    guid,
    json_bytes,
    json_message,
    json_object,
    key_material,
    playready_fault_error,
    status_error,
    vendor_error,
    widevine_content_id,
)
from proxy import hookimpl
from proxy.config import Duration
from proxy.errors import ProxyError, Reason
from proxy.model import DrmSystem, RequestType
from proxy.policy import LicenseSettings, Policy
from proxy.secrets import SecretRef
from proxy.upstream import UpstreamSettings
from proxy.vendors import (
    PolicyGap,
    UpstreamRequest,
    UpstreamResponse,
    VendorCall,
    VendorLicense,
    VendorSpec,
)

VENDOR = "azure"
CONTENT_KEY_CLAIM = "urn:microsoft:azure:mediaservices:contentkeyidentifier"
MAX_USES_CLAIM = "urn:microsoft:azure:mediaservices:maxuses"
#: Azure refuses tokens with ``maxuses`` that expire more than this far ahead (VENDOR_FACTS 3.3).
MAX_USES_LIFETIME = 3600
_PLACEHOLDERS = frozenset({"kid", "content_id"})
AZURE_DRMS = frozenset({DrmSystem.WIDEVINE, DrmSystem.PLAYREADY, DrmSystem.FAIRPLAY})
#: Widevine template ``allowed_track_types`` values Azure takes (VENDOR_FACTS 3.6).
TEMPLATE_SHORT_FORMS = ("SD_ONLY", "SD_HD")
_RAW_HINT = (
    "this backend sends the challenge and a token only: set policy_enforced_by_vendor "
    "(true, or a list of DRMs) when the content key policy at Azure/MK.IO enforces it"
)

_CKC = re.compile(rb"<ckc>\s*([A-Za-z0-9+/=_-]+)\s*</ckc>", re.IGNORECASE)


class AzureSettings(UpstreamSettings):
    """``[backends.NAME]`` with ``vendor = "azure"`` (Azure Media Services or MK.IO)."""

    urls: dict[DrmSystem, str]
    """License URL template per DRM, e.g.
    ``https://ACCOUNT.keydelivery.REGION.media.azure.net/Widevine/?kid={kid}``.
    MK.IO's URLs come from its streaming locator's ``listPaths`` (their shape is UNVERIFIED)."""
    service_certificate_url: str | None = None
    """Where Widevine service-certificate requests go when the Widevine template needs a
    key id they don't carry (no placeholders)."""
    renewal_url: str | None = None
    """Where Widevine renewals and releases (which name an existing license, not keys) go
    when the Widevine template needs a key id and the request sends no ``key_id`` hint
    (no placeholders)."""
    bearer: Literal["mint", "passthrough"] = "mint"
    """Mint the token restriction's JWT, or forward the customer's own token."""
    issuer: str | None = None
    audience: str | None = None
    signing_key: SecretRef | None = None
    """HS256: the symmetric key (base64 text, as Azure shows it); RS256: a PEM private key."""
    algorithm: Literal["HS256", "RS256"] = "HS256"
    key_id: str | None = None
    """``kid`` header, when the restriction holds several keys."""
    token_lifetime: Duration = Field(default=300.0, gt=0, le=86400)
    content_key_identifier: bool = True
    """Add the ``contentkeyidentifier`` required claim (the key id as a GUID)."""
    max_uses: int | None = Field(default=None, ge=1)
    """Add the ``maxuses`` replay claim (Azure then refuses tokens living over 1 h, so
    ``token_lifetime`` must be 1 h or less)."""
    claims: dict[str, str | int | bool] = Field(default_factory=dict)
    """Fixed claims the restriction requires."""
    forward_claims: list[str] = Field(default_factory=list)
    """Claims copied from the customer's token (MK.IO elects a policy option by them)."""
    policy_claim: str | None = None
    """A claim that carries the elected policy's name, for option election by claim."""
    bearer_in: Literal["header", "query"] = "header"
    """``Authorization: Bearer`` or the ``token`` query parameter."""
    fairplay_asset_id: bool = True
    """Send ``assetId`` (the content id, else the key id) beside the SPC."""
    widevine_request: Literal["raw", "template"] = "raw"
    """``template``: send Widevine challenges in the JSON license-template form (seed 000)."""
    widevine_provider: str | None = None
    use_policy_overrides_exclusively: bool | None = None
    policy_enforced_by_vendor: bool | list[DrmSystem] = False
    """The content key policy configured at Azure or MK.IO enforces the policy's rules
    for these DRMs (``true``: every DRM). Without it, a policy rule this backend can't
    put in its request is a config error: raw requests (PlayReady, FairPlay, Widevine
    unless ``widevine_request = "template"``) carry only the challenge and the token."""

    @property
    def vendor_enforced(self) -> frozenset[DrmSystem]:
        """The DRMs whose policy rules the content key policy at Azure/MK.IO enforces."""
        if self.policy_enforced_by_vendor is True:
            return frozenset(AZURE_DRMS)
        if self.policy_enforced_by_vendor is False:
            return frozenset()
        return frozenset(self.policy_enforced_by_vendor)

    @model_validator(mode="after")
    def _mint_needs_keys(self) -> AzureSettings:
        if self.bearer == "mint":
            missing = [n for n in ("issuer", "audience", "signing_key") if getattr(self, n) is None]
            if missing:
                raise ValueError(f"bearer = 'mint' needs {', '.join(missing)}")
        if self.max_uses is not None and self.token_lifetime > MAX_USES_LIFETIME:
            raise ValueError(
                "max_uses: Azure refuses a maxuses token that expires more than 1 h ahead; "
                "keep token_lifetime at 1h or less"
            )
        for drm, template in self.urls.items():
            try:
                fields = {f for _, f, _, _ in string.Formatter().parse(template) if f is not None}
            except ValueError:
                raise ValueError(f"urls.{drm.value}: not a valid template") from None
            unknown = fields - _PLACEHOLDERS
            if unknown:
                raise ValueError(
                    f"urls.{drm.value}: unknown placeholder {sorted(unknown)[0]!r} "
                    "(use {kid} or {content_id})"
                )
            if not template.startswith(("https://", "http://")):
                raise ValueError(f"urls.{drm.value}: not an http(s) URL")
        for name in ("service_certificate_url", "renewal_url"):
            url = getattr(self, name)
            if url and not url.startswith(("https://", "http://")):
                raise ValueError(f"{name}: not an http(s) URL")
        return self


def widevine_template(
    call: VendorCall, provider: str | None, exclusive: bool | None, settings: LicenseSettings
) -> dict[str, Any]:
    """The Widevine license template (seed 000) for ``call``, challenge as ``payload``.

    :param settings: the license settings :func:`~plugins.vendors.rendering.prepare` returned.
    """
    doc: dict[str, Any] = {"payload": b64(call.challenge.payload)}
    content_id = widevine_content_id(call)
    if content_id:
        doc["content_id"] = b64(content_id)
    if provider:
        doc["provider"] = provider
    doc.update(widevine_policy.track_selection(call.policy, TEMPLATE_SHORT_FORMS))
    overrides = widevine_policy.policy_overrides(settings)
    if overrides:
        doc["policy_overrides"] = overrides
    if exclusive is not None:
        doc["use_policy_overrides_exclusively"] = exclusive
    return doc


class AzureAdapter:
    """Builds Azure/MK.IO key-delivery requests and reads their answers."""

    def __init__(self, name: str, settings: AzureSettings, services: Any) -> None:
        self.name = name
        self.settings = settings
        self.clock = services.clock
        self.drm_systems = frozenset(settings.urls) & AZURE_DRMS
        self.renderings = {drm: self._rendering(drm) for drm in AZURE_DRMS}
        self.key: Any = None
        if settings.bearer == "mint":
            assert settings.signing_key is not None
            if settings.algorithm == "HS256":
                # Azure's symmetric keys are base64 bytes (64 in its samples); allow 16-256.
                self.key = key_material(settings.signing_key, "signing_key", lengths=range(16, 257))
            else:
                try:
                    self.key = load_pem_private_key(settings.signing_key.value, password=None)
                except (ValueError, TypeError):
                    raise ValueError(
                        f"signing_key ({settings.signing_key.reference}) is not an unencrypted "
                        "PEM private key"
                    ) from None
                if not isinstance(self.key, rsa.RSAPrivateKey) or self.key.key_size < 2048:
                    raise ValueError("signing_key: RS256 needs an RSA key of 2048 bits or more")

    def _rendering(self, drm: DrmSystem) -> rendering.Rendering:
        enforced_by = "vendor" if drm in self.settings.vendor_enforced else "nobody"
        if drm is DrmSystem.WIDEVINE and self.settings.widevine_request == "template":
            return replace(rendering.WIDEVINE, enforced_by=enforced_by)
        return rendering.Rendering(enforced_by=enforced_by, hints={"default": _RAW_HINT})

    def policy_gaps(self, policy: Policy, drm: DrmSystem) -> list[PolicyGap]:
        """The rules of ``policy`` this backend's requests can't carry (start-up check)."""
        return rendering.config_gaps(policy, drm, self.renderings[drm])

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
        headers = {"kid": self.settings.key_id} if self.settings.key_id else None
        return jwt.encode(
            self.claims(call), self.key, algorithm=self.settings.algorithm, headers=headers
        )

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
        settings = rendering.prepare(call, self.renderings[drm], VENDOR, self.clock.time())
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
            body = _template_answer(response)
        return VendorLicense(check_license(VENDOR, drm, body), None, call.key_ids, {})


def _template_answer(response: UpstreamResponse) -> bytes:
    """The license in a JSON answer to a template request: ``status`` then base64 ``license``."""
    doc = json_object(VENDOR, response)
    status = doc.get("status", "OK")
    if status != "OK":
        transient = status in widevine_policy.TRANSIENT_STATUSES
        raise vendor_error(
            Reason.UPSTREAM_UNAVAILABLE if transient else Reason.UPSTREAM_REJECTED,
            VENDOR,
            "the Widevine license service failed"
            if transient
            else "the Widevine license service refused the license",
            status=response.status,
            code=str(status),
            message=str(doc.get("status_message", "")),
        )
    license_b64 = doc.get("license")
    if not isinstance(license_b64, str):
        raise bad_response(VENDOR, "has no license")
    try:
        return b64decode_any(license_b64)
    except ValueError:
        raise bad_response(VENDOR, "has a license that is not base64") from None


class AzureVendorPlugin:
    """Registers the ``azure`` vendor (Azure Media Services and MK.IO)."""

    @hookimpl
    def proxy_register_vendors(self, register: Any) -> None:
        """Register the Azure Media Services / MK.IO key-delivery adapter."""
        register(
            VendorSpec(
                name=VENDOR,
                settings=AzureSettings,
                adapter=AzureAdapter,
                drm_systems=frozenset(
                    {DrmSystem.WIDEVINE, DrmSystem.PLAYREADY, DrmSystem.FAIRPLAY}
                ),
                description="Azure Media Services / MK.IO key delivery with a minted bearer token",
            )
        )


__all__ = ["AzureAdapter", "AzureSettings", "AzureVendorPlugin", "widevine_template"]
