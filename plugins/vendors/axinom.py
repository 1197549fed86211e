"""The ``axinom`` vendor: Axinom DRM's License Service (Widevine, PlayReady, FairPlay).

The proxy acts as Axinom's entitlement service: for each request it builds an
Entitlement Message v2 from the elected policy, wraps it in a License Service
Message (``version``, ``com_key_id``, ``message``, a short
``expiration_date``) signed HS256 with the base64-decoded communication key,
and sends it in ``X-AxDRM-Message`` (or the ``AxDrmMessage`` query
parameter) beside the raw challenge to the DRM's ``AcquireLicense`` URL.

Answers: 200 is the license; errors carry ``X-AxDRM-ErrorMessage``, and
PlayReady errors come as HTTP 500 with a SOAP fault. ``X-AxDRM-Identity``,
``-Server`` and ``-Version`` are kept in ``vendor_metadata``; the response's
``X-AxDRM-Message`` (license request info) is read for the operator and
never reaches the player.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any, Literal
from urllib.parse import quote

import jwt
from pydantic import Field

from plugins.vendors import rendering
from plugins.vendors.common import (
    OCTET_STREAM,
    PLAYREADY_CONTENT_TYPE,
    PLAYREADY_SOAP_ACTION,
    check_license,
    guid,
    header_metadata,
    key_material,
    playready_fault_error,
    scrub,
    status_error,
    vendor_message,
)
from proxy import hookimpl
from proxy.config import Duration
from proxy.errors import ProxyError, Reason
from proxy.model import DrmSystem, RequestType
from proxy.policy import (
    DEFAULT_TRACK,
    CgmsA,
    EffectivePolicy,
    Hdcp,
    LicenseSettings,
    PlayReadyOutputProtection,
    Policy,
    TrackRules,
)
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

VENDOR = "axinom"
MESSAGE_HEADER = "X-AxDRM-Message"
MESSAGE_QUERY = "AxDrmMessage"
ERROR_HEADER = "X-AxDRM-ErrorMessage"
INFO_HEADERS = ("X-AxDRM-Identity", "X-AxDRM-Server", "X-AxDRM-Version")

DEFAULT_URLS = {
    DrmSystem.WIDEVINE: "https://drm-widevine-licensing.axprod.net/AcquireLicense",
    DrmSystem.PLAYREADY: "https://drm-playready-licensing.axprod.net/AcquireLicense",
    DrmSystem.FAIRPLAY: "https://drm-fairplay-licensing.axprod.net/AcquireLicense",
}

#: Our HDCP names -> Axinom's Widevine ``hdcp`` values ("2.0" etc. per its docs).
WIDEVINE_HDCP = {
    Hdcp.NONE: "NONE",
    Hdcp.V1: "1.0",
    Hdcp.V2: "2.0",
    Hdcp.V2_1: "2.1",
    Hdcp.V2_2: "2.2",
    Hdcp.V2_3: "2.3",
    Hdcp.NO_DIGITAL_OUTPUT: "NO_DIGITAL_OUTPUT",
}
WIDEVINE_CGMS = {CgmsA.COPY_FREE: "free", CgmsA.COPY_ONCE: "once", CgmsA.COPY_NEVER: "never"}

AXINOM_DRMS = frozenset({DrmSystem.WIDEVINE, DrmSystem.PLAYREADY, DrmSystem.FAIRPLAY})
_LICENSE = frozenset(
    {"persistent", "license_duration", "rental_duration", "playback_duration", "expiry"}
)
#: What an Entitlement Message carries per DRM: dates, durations (the rental window
#: folded into ``duration``) and persistence for all; playback and renewal for Widevine
#: only (``can_play = false`` elsewhere is refused by the proxy); every track rule of the
#: DRM in usage policies, per key too; keys of disallowed track types left out.
RENDERINGS = {
    drm: rendering.Rendering(
        license=_LICENSE
        | (
            frozenset({"can_play", *rendering.RENEWAL_FIELDS})
            if drm is DrmSystem.WIDEVINE
            else frozenset()
        ),
        tracks=frozenset(rendering.TRACK_FIELDS[drm]),
        allowed_track_types=True,
        per_key=True,
    )
    for drm in AXINOM_DRMS
}


class AxinomSettings(UpstreamSettings):
    """``[backends.NAME]`` with ``vendor = "axinom"``."""

    com_key_id: uuid.UUID
    """The communication key id (a GUID, from the Axinom portal)."""
    com_key: SecretRef
    """The communication key by reference; Axinom gives it as base64 of 32 bytes."""
    urls: dict[DrmSystem, str] = Field(default_factory=lambda: dict(DEFAULT_URLS))
    """``AcquireLicense`` URL per DRM (tenant-prefixed hosts go here)."""
    message_ttl: Duration = Field(default=60.0, gt=0, le=86400)
    """Lifetime of each License Service Message (its ``expiration_date``)."""
    message_transport: Literal["header", "query"] = "header"
    """``X-AxDRM-Message`` header, or the ``AxDrmMessage`` query parameter."""
    message_id: bool = True
    """Give each message a fresh ``id`` (GUID)."""
    prevent_drm_message_reuse: bool | None = None
    """``license_server.access_control.prevent_drm_message_reuse``; None: Axinom's default.
    That ``id`` is what reuse prevention keys on is UNVERIFIED."""
    return_license_request_info: bool = False
    """Ask for the License Request Info Message in the response ``X-AxDRM-Message``;
    its ``type`` and ``device_info`` strings go to ``vendor_metadata``."""
    session_id_claim: str | None = "sid"
    """Token claim whose value becomes ``session.id`` (request metadata ``session_id`` wins)."""
    send_allowed_ip_addresses: bool = False
    """Render a policy's single-host ``access.ip_allow`` as
    ``access_control.allowed_ip_addresses`` and send the end user's address in
    ``X-Forwarded-For``. Off by default: Axinom sees the proxy's address, so this only
    works when the tenant believes the proxy's ``X-Forwarded-For``; the proxy enforces
    ``ip_allow`` itself either way."""
    send_playready_device_ids: bool = False
    """Render a trusted caller's device id in ``access_control.playready.allowed_device_ids``
    for policies with ``access.require_device_id``. Axinom expects PlayReady device GUIDs
    (as its License Request Info Message reports them): a device id that is not a GUID is
    ``REQUEST_INVALID``. Off by default: the proxy enforces ``require_device_id`` itself."""


def _rules_doc(rules: TrackRules) -> dict[str, Any]:
    """One content key usage policy body (``widevine``/``playready``/``fairplay``)."""
    widevine: dict[str, Any] = {}
    if rules.widevine_security_level is not None:
        widevine["device_security_level"] = rules.widevine_security_level.name
    if rules.hdcp is not None:
        widevine["hdcp"] = WIDEVINE_HDCP[rules.hdcp]
    if rules.cgms_a is not None:
        widevine["cgms-a"] = WIDEVINE_CGMS[rules.cgms_a]
    if rules.disable_analog_output is not None:
        widevine["disable_analog_output"] = rules.disable_analog_output
    playready: dict[str, Any] = {}
    if rules.playready_min_security_level is not None:
        playready["min_device_security_level"] = int(rules.playready_min_security_level)
    opl = rules.playready_output_protection
    if opl is not None:
        for name in PlayReadyOutputProtection.model_fields:
            value = getattr(opl, name)
            if value is not None:
                playready[f"{name}_opl"] = value
    fairplay: dict[str, Any] = {}
    if rules.fairplay_hdcp is not None:
        fairplay["hdcp"] = rules.fairplay_hdcp.value
    if rules.fairplay_allow_airplay is not None:
        fairplay["allow_airplay"] = rules.fairplay_allow_airplay
    if rules.fairplay_allow_av_adapter is not None:
        fairplay["allow_av_adapter"] = rules.fairplay_allow_av_adapter
    doc: dict[str, Any] = {}
    for name, section in (("widevine", widevine), ("playready", playready), ("fairplay", fairplay)):
        if section:
            doc[name] = section
    return doc


def _iso(instant: datetime | float) -> str:
    if isinstance(instant, int | float):
        instant = datetime.fromtimestamp(instant, UTC)
    elif instant.tzinfo is None:
        instant = instant.replace(tzinfo=UTC)
    return instant.isoformat(timespec="seconds")


def license_duration(settings: LicenseSettings) -> int | None:
    """``license.duration``: the license duration, or the rental window when shorter.

    Axinom has no rental window of its own; the shorter of the two is never looser
    than the policy. 0 (unlimited) gives way to any limit.
    """
    limits = [d for d in (settings.license_duration, settings.rental_duration) if d]
    if limits:
        return min(limits)
    return settings.license_duration if settings.license_duration is not None else None


def license_section(settings: LicenseSettings) -> dict[str, Any]:
    """``license``: persistence, durations, dates, and the Widevine-only settings.

    :param settings: the license settings :func:`~plugins.vendors.rendering.prepare`
        returned (window checked, durations capped by ``expiry``).
    """
    doc: dict[str, Any] = {}
    if settings.start is not None:
        doc["start_datetime"] = _iso(settings.start)
    if settings.expiry is not None:
        doc["expiration_datetime"] = _iso(settings.expiry)
    duration = license_duration(settings)
    if duration is not None:
        doc["duration"] = duration
    if settings.persistent is not None:
        doc["allow_persistence"] = settings.persistent
    playback = settings.playback_duration
    widevine: dict[str, Any] = {}
    if settings.can_play is not None:
        widevine["allow_playback"] = settings.can_play
    if playback is not None:
        widevine["playback_duration"] = playback
        doc["playready"] = {"playback_duration": playback}
        doc["fairplay"] = {"playback_duration": playback}
    renewal = settings.renewal
    if renewal.enabled is not None:
        widevine["allow_renewal"] = renewal.enabled
    if renewal.enabled:
        for ours, theirs in (
            ("delay", "renewal_delay"),
            ("recovery_window", "renewal_recovery"),
            ("retry_interval", "renewal_retry_interval"),
            ("renew_with_usage", "renew_with_usage"),
            ("url", "renewal_url"),
        ):
            value = getattr(renewal, ours)
            if value is not None:
                widevine[theirs] = value
    if widevine:
        doc["widevine"] = widevine
    return doc


def usage_policies(
    policy: EffectivePolicy, key_ids: tuple[bytes, ...]
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """The inline keys (GUIDs, each naming its usage policy) and the usage policies.

    Keys of a track type the policy does not allow are left out. Each track
    type's rules become a policy named after it; a key with rules of its own
    gets a policy named after the key. A key whose rules are empty names no
    policy, so Axinom's defaults apply to it.
    """
    allowed = policy.allowed_track_types
    inline: list[dict[str, Any]] = []
    policies: dict[str, dict[str, Any]] = {}
    for key_id in key_ids:
        track = policy.key_track_types.get(key_id)
        if allowed is not None and track is not None and track not in allowed:
            continue
        if key_id in policy.key_rules:
            name, rules = f"key-{guid(key_id)}", policy.key_rules[key_id]
        else:
            rules = policy.rules_for_track(track)
            name = track.value if track is not None and track.value in policy.tracks else None
            name = name or DEFAULT_TRACK
        entry: dict[str, Any] = {"id": guid(key_id)}
        body = _rules_doc(rules)
        if body:
            entry["usage_policy"] = name
            policies.setdefault(name, {"name": name, **body})
        inline.append(entry)
    return inline, list(policies.values())


class AxinomAdapter:
    """Builds signed License Service Messages and reads Axinom's answers."""

    def __init__(self, name: str, settings: AxinomSettings, services: Any) -> None:
        self.name = name
        self.settings = settings
        self.clock = services.clock
        self.key = key_material(settings.com_key, "com_key", lengths=(32,), encodings=("base64",))
        self.com_key_id = str(settings.com_key_id)
        self.drm_systems = frozenset(settings.urls) & AXINOM_DRMS
        for drm, url in settings.urls.items():
            if not url.startswith(("https://", "http://")):
                raise ValueError(f"urls.{drm.value}: {url!r} is not an http(s) URL")

    def policy_gaps(self, policy: Policy, drm: DrmSystem) -> list[PolicyGap]:
        """The rules of ``policy`` an Entitlement Message can't carry (start-up check)."""
        return rendering.config_gaps(policy, drm, RENDERINGS[drm])

    def entitlement(self, call: VendorCall) -> dict[str, Any]:
        """The Entitlement Message v2 for ``call``."""
        policy = call.policy
        drm = call.challenge.drm_system
        if drm not in self.drm_systems:
            raise ProxyError(
                Reason.DRM_NOT_SUPPORTED, f"backend {call.backend!r} has no {drm.value} URL"
            )
        settings = rendering.prepare(call, RENDERINGS[drm], VENDOR, self.clock.time())
        key_ids = call.key_ids
        # A Widevine renewal or release names an existing license, not keys: like a
        # certificate request it goes with whatever keys are known (often none).
        is_new = call.challenge.request_type is RequestType.NEW
        if is_new and not key_ids:
            raise ProxyError(
                Reason.REQUEST_INVALID,
                "Axinom needs the key ids: the challenge names none, so send key_id hints",
            )
        inline, policies = usage_policies(policy, key_ids)
        if is_new and not inline:
            raise ProxyError(
                Reason.UPSTREAM_REJECTED,
                "the policy allows none of the requested keys",
                metadata={"vendor": VENDOR, "vendor_code": "NO_KEYS_ALLOWED"},
            )
        message: dict[str, Any] = {"type": "entitlement_message", "version": 2}
        license_doc = license_section(settings)
        if license_doc:
            message["license"] = license_doc
        message["content_keys_source"] = {"inline": inline}
        if policies:
            message["content_key_usage_policies"] = policies
        server = self._license_server(call)
        if server:
            message["license_server"] = server
        session = self._session(call)
        if session:
            message["session"] = session
        return message

    def _license_server(self, call: VendorCall) -> dict[str, Any]:
        access: dict[str, Any] = {}
        rules = call.policy.policy.access
        if self.settings.send_allowed_ip_addresses and rules.ip_allow:
            # Axinom lists addresses, not networks: a policy's allow list of single
            # hosts goes through; a wider network can't be expressed and stays ours.
            hosts = [str(n.network_address) for n in rules.ip_allow if n.num_addresses == 1]
            if len(hosts) == len(rules.ip_allow):
                access["allowed_ip_addresses"] = hosts
        device = call.ctx.request.client.device_id
        if (
            self.settings.send_playready_device_ids
            and rules.require_device_id
            and device
            and call.challenge.drm_system is DrmSystem.PLAYREADY
        ):
            try:
                device_guid = str(uuid.UUID(device))
            except ValueError:
                raise ProxyError(
                    Reason.REQUEST_INVALID,
                    "the device id is not a PlayReady device GUID, which this backend sends",
                ) from None
            access["playready"] = {"allowed_device_ids": [device_guid]}
        if self.settings.prevent_drm_message_reuse is not None:
            access["prevent_drm_message_reuse"] = self.settings.prevent_drm_message_reuse
        server: dict[str, Any] = {}
        if access:
            server["access_control"] = access
        if self.settings.return_license_request_info:
            server["return_license_request_info"] = True
        return server

    def _session(self, call: VendorCall) -> dict[str, Any]:
        session: dict[str, Any] = {}
        subject = call.principal.subject
        if subject and subject.strip():
            session["user_id"] = subject
        session_id = call.ctx.request.metadata.get("session_id")
        claim = self.settings.session_id_claim
        if not session_id and claim:
            value = call.principal.claims.get(claim)
            session_id = value if isinstance(value, str) else None
        if session_id and session_id.strip():
            session["id"] = session_id
        return session

    def license_service_message(self, call: VendorCall) -> str:
        """The signed License Service Message (a compact HS256 JWT)."""
        now = self.clock.time()
        envelope: dict[str, Any] = {"version": 1, "com_key_id": self.com_key_id}
        if self.settings.message_id:
            envelope["id"] = str(uuid.uuid4())
        envelope["expiration_date"] = _iso(now + self.settings.message_ttl)
        envelope["message"] = self.entitlement(call)
        return jwt.encode(envelope, self.key, algorithm="HS256")

    def build_request(self, call: VendorCall) -> UpstreamRequest:
        """The challenge, as the CDM made it, with the signed message beside it."""
        drm = call.challenge.drm_system
        url = self.settings.urls.get(drm)
        if url is None:
            raise ProxyError(
                Reason.DRM_NOT_SUPPORTED, f"backend {call.backend!r} has no {drm.value} URL"
            )
        token = self.license_service_message(call)
        headers = {"Content-Type": OCTET_STREAM}
        if drm is DrmSystem.PLAYREADY:
            headers = {"Content-Type": PLAYREADY_CONTENT_TYPE, "SOAPAction": PLAYREADY_SOAP_ACTION}
        client_ip = call.ctx.request.client.ip_address
        if self.settings.send_allowed_ip_addresses and client_ip:
            headers["X-Forwarded-For"] = client_ip
        if self.settings.message_transport == "header":
            headers[MESSAGE_HEADER] = token
        else:
            url += ("&" if "?" in url else "?") + f"{MESSAGE_QUERY}={quote(token, safe='')}"
        return UpstreamRequest(url=url, body=call.challenge.payload, headers=headers)

    def parse_response(self, call: VendorCall, response: UpstreamResponse) -> VendorLicense:
        """The license, or the error Axinom's header or SOAP fault describes."""
        drm = call.challenge.drm_system
        message = response.headers.get(ERROR_HEADER)
        if response.status != 200:
            if drm is DrmSystem.PLAYREADY:
                fault = playready_fault_error(VENDOR, response)
                if fault is not None:
                    shown = vendor_message(message)
                    if shown:
                        fault.metadata["vendor_message"] = shown
                    raise fault
            raise status_error(VENDOR, response, message=message)
        body = check_license(VENDOR, drm, response.body)
        metadata = header_metadata(response.headers, INFO_HEADERS)
        info = response.headers.get(MESSAGE_HEADER)
        if info and self.settings.return_license_request_info:
            metadata.update(_request_info(info))
        return VendorLicense(body, None, call.key_ids, metadata)


def _request_info(token: str) -> dict[str, str]:
    """Facts from the License Request Info Message (a JWT; its signing key is UNVERIFIED,
    so it is read as information, never trusted for a decision)."""
    try:
        doc = jwt.decode(token, options={"verify_signature": False})
    except jwt.PyJWTError:
        return {}
    message = doc.get("message") if isinstance(doc.get("message"), dict) else doc
    found: dict[str, str] = {}
    if isinstance(message.get("type"), str):
        found["axinom.request_info.type"] = scrub(message["type"], 64)
    device = message.get("device_info")
    if isinstance(device, dict):
        for key, value in device.items():
            if isinstance(value, str | int | bool) and key != "client_token":
                found[f"axinom.device_info.{key}"] = scrub(str(value), 120)
    return found


class AxinomVendorPlugin:
    """Registers the ``axinom`` vendor."""

    @hookimpl
    def proxy_register_vendors(self, register: Any) -> None:
        """Register the Axinom DRM License Service adapter."""
        register(
            VendorSpec(
                name=VENDOR,
                settings=AxinomSettings,
                adapter=AxinomAdapter,
                drm_systems=frozenset(
                    {DrmSystem.WIDEVINE, DrmSystem.PLAYREADY, DrmSystem.FAIRPLAY}
                ),
                description="Axinom DRM: Entitlement Message v2 in a signed License Service Message",
            )
        )
