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

import re
import uuid
from typing import Any, Literal

import jwt
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from cryptography.hazmat.primitives.serialization import load_pem_private_key
from pydantic import Field, model_validator

from plugins.vendors import rendering
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
    log_vendor_body,
    playready_fault_error,
    status_error,
    vendor_error,
)
from proxy import hookimpl
from proxy.config import Duration
from proxy.errors import ProxyError, Reason
from proxy.model import DrmSystem, RequestType
from proxy.policy import DEFAULT_TRACK, EffectivePolicy, LicenseSettings, Policy, TrackRules
from proxy.secrets import SecretRef
from proxy.upstream import UpstreamSettings, retry_after_seconds
from proxy.vendors import (
    PolicyGap,
    UpstreamRequest,
    UpstreamResponse,
    VendorCall,
    VendorLicense,
    VendorSpec,
)

VENDOR = "verimatrix"
VERIMATRIX_DRMS = frozenset({DrmSystem.WIDEVINE, DrmSystem.PLAYREADY, DrmSystem.FAIRPLAY})
#: The license settings the ``policy`` claim carries.
POLICY_CLAIM_FIELDS = frozenset(
    {
        "can_play",
        "persistent",
        "license_duration",
        "rental_duration",
        "playback_duration",
        "renewal.enabled",
    }
)
DEFAULT_URLS = {
    DrmSystem.WIDEVINE: "https://multidrm.vsaas.verimatrixcloud.net/widevine",
    DrmSystem.PLAYREADY: "https://multidrm.vsaas.verimatrixcloud.net/playready",
    DrmSystem.FAIRPLAY: "https://multidrm.vsaas.verimatrixcloud.net/fairplay",
}
#: Verimatrix rejects tokens older than this many seconds after ``iat``: the current doc
#: says 120, an older one 90 (VENDOR_FACTS 2.5). 90 is the default; 120 only on request.
MAX_TOKEN_AGE = 120
DEFAULT_MAX_TOKEN_AGE = 90

_R = Reason.UPSTREAM_REJECTED
_U = Reason.UPSTREAM_UNAVAILABLE
#: MDRM code -> reason (VENDOR_FACTS 2.6). A 5xx family member is an outage, the
#: rest are refusals of this request; codes not listed fall back on the HTTP status.
MDRM_CODES: dict[int, Reason] = {
    500: _U,
    501: _R,
    502: _R,
    503: _R,
    504: _R,
    505: _R,
    506: _R,
    507: _U,
    508: _R,
    509: _R,
    510: _R,
    511: _R,
    717: _R,
    1000: _U,
    1001: _R,
    1002: _R,
    1003: _R,
    1004: _R,
    1005: _R,
    1006: _R,
    1007: _R,
    1008: _R,
    1009: _U,
    1010: _U,
    1011: _R,
    1012: _U,
    1013: _R,
    1014: _R,
    1015: _U,
    1110: _R,
}
_MDRM = re.compile(r"MDRM[-_ ]?(\d{3,4})", re.IGNORECASE)
_MESSAGE_FIELDS = ("message", "errorMessage", "error_message", "description", "detail")

_ALGORITHMS: dict[str, type] = {
    "ES256": ec.EllipticCurvePrivateKey,
    "ES384": ec.EllipticCurvePrivateKey,
    "RS256": rsa.RSAPrivateKey,
    "PS256": rsa.RSAPrivateKey,
    "EdDSA": ed25519.Ed25519PrivateKey,
}


class VerimatrixSettings(UpstreamSettings):
    """``[backends.NAME]`` with ``vendor = "verimatrix"``."""

    urls: dict[DrmSystem, str] = Field(default_factory=lambda: dict(DEFAULT_URLS))
    """License URL per DRM (the tenant's host, vsaas or core, is UNVERIFIED)."""
    signing_key: SecretRef
    """The Service Access Key's private half (PEM) by reference."""
    key_id: str = Field(min_length=1)
    """The Service Access Key id, sent as the JWT ``kid``."""
    algorithm: Literal["ES256", "ES384", "RS256", "PS256", "EdDSA"] = "ES256"
    audience: str = Field(min_length=1)
    """``aud``: the purpose the key was registered for."""
    issuer: str | None = None
    """``iss``, when Verimatrix gave you one (its value is UNVERIFIED)."""
    payload_version: int | None = None
    """``ver``, when Verimatrix gave you one (its value is UNVERIFIED)."""
    token_lifetime: Duration = Field(default=60.0, gt=0, le=MAX_TOKEN_AGE)
    """Seconds from ``iat`` to ``exp``, at most ``max_token_age``."""
    max_token_age: int = Field(default=DEFAULT_MAX_TOKEN_AGE, ge=1, le=MAX_TOKEN_AGE)
    """The longest token the tenant accepts after ``iat``: 90 s, which both versions of
    Verimatrix's doc allow; raise it to 120 (the current doc's limit) only for a tenant
    known to accept it."""
    authorization: Literal["raw", "bearer"] = "raw"
    """How the token sits in ``Authorization``: raw (public integrations), or ``Bearer``."""
    send_subscriber: bool = False
    """Add ``subscriber`` (the token's subject); Verimatrix advises it only when needed."""
    send_device: bool = False
    """Add ``device`` (the trusted caller's device id) when known."""
    security_policy_drms: list[DrmSystem] = Field(default_factory=lambda: [DrmSystem.WIDEVINE])
    """DRMs whose security policy objects are rendered. Widevine's field names are
    documented; the PlayReady and FairPlay objects' names are UNVERIFIED."""
    policy_claim: bool = True
    """Render the license settings as the ``policy`` claim (field names OBSERVED-3P)."""
    service_certificate_subject: str = "service-certificate"
    """``sub`` for a Widevine service-certificate request that names no content."""
    playready_content_type: str = PLAYREADY_CONTENT_TYPE

    @model_validator(mode="after")
    def _lifetime_within_the_token_age(self) -> VerimatrixSettings:
        if self.token_lifetime > self.max_token_age:
            raise ValueError(
                f"token_lifetime: {self.token_lifetime:g} s is longer than max_token_age "
                f"({self.max_token_age} s); Verimatrix would refuse the token"
            )
        return self


def _load_private_key(settings: VerimatrixSettings) -> Any:
    try:
        key = load_pem_private_key(settings.signing_key.value, password=None)
    except (ValueError, TypeError):
        raise ValueError(
            f"signing_key ({settings.signing_key.reference}) is not an unencrypted PEM private key"
        ) from None
    expected = _ALGORITHMS[settings.algorithm]
    if not isinstance(key, expected):
        raise ValueError(f"signing_key does not suit algorithm {settings.algorithm}")
    if settings.algorithm == "ES256" and not isinstance(key.curve, ec.SECP256R1):  # type: ignore[attr-defined]
        raise ValueError("signing_key: ES256 needs a P-256 key")
    if settings.algorithm == "ES384" and not isinstance(key.curve, ec.SECP384R1):  # type: ignore[attr-defined]
        raise ValueError("signing_key: ES384 needs a P-384 key")
    return key


def _widevine_object(rules: TrackRules) -> dict[str, Any]:
    doc: dict[str, Any] = {}
    if rules.widevine_security_level is not None:
        doc["security_level"] = int(rules.widevine_security_level)
    protection: dict[str, Any] = {}
    if rules.hdcp is not None:
        protection["hdcp"] = rules.hdcp.value
    if rules.disable_analog_output is not None:
        protection["disable_analog_output"] = rules.disable_analog_output
    if rules.cgms_a is not None:
        protection["cgms_flags"] = rules.cgms_a.value
    if protection:
        doc["required_output_protection"] = protection
    return doc


def _playready_object(rules: TrackRules) -> dict[str, Any]:
    doc: dict[str, Any] = {}
    if rules.playready_min_security_level is not None:
        doc["min_security_level"] = int(rules.playready_min_security_level)
    if rules.playready_output_protection is not None:
        for name, value in rules.playready_output_protection.model_dump(exclude_none=True).items():
            doc[f"{name}_opl"] = value
    return doc


def _fairplay_object(rules: TrackRules) -> dict[str, Any]:
    doc: dict[str, Any] = {}
    if rules.fairplay_hdcp is not None:
        doc["hdcp"] = rules.fairplay_hdcp.value
    if rules.fairplay_allow_airplay is not None:
        doc["allow_airplay"] = rules.fairplay_allow_airplay
    if rules.fairplay_allow_av_adapter is not None:
        doc["allow_av_adapter"] = rules.fairplay_allow_av_adapter
    return doc


_RENDERERS = {
    DrmSystem.WIDEVINE: _widevine_object,
    DrmSystem.PLAYREADY: _playready_object,
    DrmSystem.FAIRPLAY: _fairplay_object,
}


def policy_id(policy: EffectivePolicy, scope: str) -> str:
    """A stable security policy UUID for one policy and one scope (track type or key)."""
    return str(uuid.uuid5(uuid.NAMESPACE_URL, f"license-proxy:{policy.name}:{scope}"))


def security_claims(
    policy: EffectivePolicy, drm: DrmSystem, key_ids: tuple[bytes, ...]
) -> dict[str, Any]:
    """``security_policy`` with its assignment claims for ``drm``.

    Each configured track type becomes a policy assigned in
    ``track_type_policy``; the ``DEFAULT`` rules become
    ``default_security_policy``; keys with rules of their own are assigned in
    ``track_policy``. Rules with nothing for ``drm`` are left out, and so are track
    types the policy does not allow (a security policy is no permission).
    """
    render = _RENDERERS.get(drm)
    if render is None:
        return {}
    allowed = policy.allowed_track_types
    policies: dict[str, Any] = {}
    track_types: dict[str, str] = {}
    claims: dict[str, Any] = {}
    for track, rules in policy.tracks.items():
        if allowed is not None and track != DEFAULT_TRACK and track not in allowed:
            continue
        body = render(rules)
        if not body:
            continue
        pid = policy_id(policy, track)
        policies[pid] = {drm.value: body}
        if track == DEFAULT_TRACK:
            claims["default_security_policy"] = pid
        else:
            track_types[track] = pid
    per_key: dict[str, str] = {}
    for key_id in key_ids:
        rules = policy.key_rules.get(key_id)
        body = render(rules) if rules is not None else None
        if body:
            pid = policy_id(policy, guid(key_id))
            policies[pid] = {drm.value: body}
            per_key[guid(key_id)] = pid
    if not policies:
        return {}
    claims["security_policy"] = policies
    if track_types:
        claims["track_type_policy"] = track_types
    if per_key:
        claims["track_policy"] = per_key
    return claims


def license_policy(settings: LicenseSettings, drm: DrmSystem) -> dict[str, Any]:
    """The ``policy`` claim: license settings for ``drm`` (names OBSERVED-3P, UNVERIFIED).

    :param settings: the license settings :func:`~plugins.vendors.rendering.prepare`
        returned (``license_duration`` capped by an ``expiry``).
    """
    body: dict[str, Any] = {}
    for ours, theirs in (
        ("can_play", "can_play"),
        ("persistent", "can_persist"),
        ("license_duration", "license_duration"),
        ("rental_duration", "rental_duration"),
        ("playback_duration", "playback_duration"),
    ):
        value = getattr(settings, ours)
        if value is not None:
            body[theirs] = value
    if settings.renewal.enabled is not None:
        body["can_renew"] = settings.renewal.enabled
    return {drm.value: body} if body else {}


class VerimatrixAdapter:
    """Mints Verimatrix license-server tokens and reads MDRM answers."""

    def __init__(self, name: str, settings: VerimatrixSettings, services: Any) -> None:
        self.name = name
        self.settings = settings
        self.clock = services.clock
        self.key = _load_private_key(settings)
        self.drm_systems = frozenset(settings.urls) & VERIMATRIX_DRMS
        self.renderings = {drm: self._rendering(drm) for drm in VERIMATRIX_DRMS}
        for drm, url in settings.urls.items():
            if not url.startswith(("https://", "http://")):
                raise ValueError(f"urls.{drm.value}: {url!r} is not an http(s) URL")

    def _rendering(self, drm: DrmSystem) -> rendering.Rendering:
        security = drm in self.settings.security_policy_drms
        return rendering.Rendering(
            license=POLICY_CLAIM_FIELDS if self.settings.policy_claim else frozenset(),
            tracks=frozenset(rendering.TRACK_FIELDS[drm]) if security else frozenset(),
            per_key=security,
            hints={
                "license": "turn policy_claim on (its field names are UNVERIFIED)",
                "renewal": "Verimatrix's policy claim carries can_renew only",
                "tracks": f"list {drm.value} in security_policy_drms "
                f"(Verimatrix's {drm.value} field names are UNVERIFIED)",
                "allowed_track_types": "Verimatrix licenses every key of the content id "
                "(sub); serve this policy from a backend that leaves keys out (axinom, "
                "widevine_cloud, azure with widevine_request = 'template')",
            },
        )

    def policy_gaps(self, policy: Policy, drm: DrmSystem) -> list[PolicyGap]:
        """The rules of ``policy`` this backend's token can't carry (start-up check)."""
        return rendering.config_gaps(policy, drm, self.renderings[drm])

    def claims(self, call: VendorCall) -> dict[str, Any]:
        """The license-server token's claims for ``call``."""
        settings = self.settings
        drm = call.challenge.drm_system
        if drm not in self.drm_systems:
            raise ProxyError(
                Reason.DRM_NOT_SUPPORTED, f"backend {call.backend!r} has no {drm.value} URL"
            )
        license_settings = rendering.prepare(call, self.renderings[drm], VENDOR, self.clock.time())
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
            "jti": str(uuid.uuid4()),
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
        return jwt.encode(
            self.claims(call),
            self.key,
            algorithm=self.settings.algorithm,
            headers={"kid": self.settings.key_id},
        )

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


def read_mdrm(body: bytes) -> tuple[str | None, str | None]:
    """The MDRM code in an error body, whatever its shape (JSON or text), and the message
    of a JSON body's known message field (free text never reaches callers)."""
    text = body[:4096].decode("utf-8", "replace")
    message = json_message(body, _MESSAGE_FIELDS)
    match = _MDRM.search(text)
    code = f"MDRM-{match.group(1)}" if match else None
    return code, message


def mdrm_error(
    response: UpstreamResponse, drm: DrmSystem, *, missing: str | None = None
) -> ProxyError:
    """The error for a Verimatrix answer: by its MDRM code, else by its HTTP status."""
    code, message = read_mdrm(response.body)
    if code is None and drm is DrmSystem.PLAYREADY and response.status == 500:
        fault = playready_fault_error(VENDOR, response)
        if fault is not None:
            return fault
    if code is not None:
        log_vendor_body(VENDOR, response.status, response.body)
        reason = MDRM_CODES.get(int(code[5:]))
        if reason is None:
            reason = _U if response.status >= 500 or response.status == 429 else _R
        return vendor_error(
            reason,
            VENDOR,
            f"Verimatrix answered {code}",
            status=response.status,
            code=code,
            message=message,
            retry_after=retry_after_seconds(response.headers),
        )
    if missing is not None:
        return bad_response(VENDOR, f"has no {missing}", response.status)
    return status_error(VENDOR, response, message=message)


class VerimatrixVendorPlugin:
    """Registers the ``verimatrix`` vendor."""

    @hookimpl
    def proxy_register_vendors(self, register: Any) -> None:
        """Register the Verimatrix Multi-DRM adapter."""
        register(
            VendorSpec(
                name=VENDOR,
                settings=VerimatrixSettings,
                adapter=VerimatrixAdapter,
                drm_systems=frozenset(
                    {DrmSystem.WIDEVINE, DrmSystem.PLAYREADY, DrmSystem.FAIRPLAY}
                ),
                description="Verimatrix Multi-DRM: a per-request ES256 license-server token",
            )
        )
