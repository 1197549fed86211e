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
from typing import Any
from urllib.parse import quote

import jwt

from plugins.vendors.axinom.entitlement import (
    AXINOM_DRMS,
    RENDERINGS,
    iso,
    license_section,
    usage_policies,
)
from plugins.vendors.axinom.settings import AxinomSettings
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
    check_license,
    header_metadata,
    key_material,
    playready_fault_error,
    prepare,
    random_uuid,
    scrub,
    status_error,
    vendor_message,
)

VENDOR = "axinom"
MESSAGE_HEADER = "X-AxDRM-Message"
MESSAGE_QUERY = "AxDrmMessage"
ERROR_HEADER = "X-AxDRM-ErrorMessage"
INFO_HEADERS = ("X-AxDRM-Identity", "X-AxDRM-Server", "X-AxDRM-Version")


class AxinomAdapter:
    """Builds signed License Service Messages and reads Axinom's answers."""

    renderings = RENDERINGS

    def __init__(self, name: str, settings: AxinomSettings, services: Any) -> None:
        self.name = name
        self.settings = settings
        self.clock = services.clock
        key = key_material(settings.com_key, "com_key", lengths=(32,), encodings=("base64",))
        self.signer = JwsSigner("HS256", key)
        self.com_key_id = str(settings.com_key_id)
        self.drm_systems = frozenset(settings.urls) & AXINOM_DRMS
        for drm, url in settings.urls.items():
            if not url.startswith(("https://", "http://")):
                raise ValueError(f"urls.{drm.value}: {url!r} is not an http(s) URL")

    def entitlement(self, call: VendorCall) -> dict[str, Any]:
        """The Entitlement Message v2 for ``call``."""
        policy = call.policy
        drm = call.challenge.drm_system
        if drm not in self.drm_systems:
            raise ProxyError(
                Reason.DRM_NOT_SUPPORTED, f"backend {call.backend!r} has no {drm.value} URL"
            )
        settings = prepare(call, self.renderings[drm], VENDOR, self.clock.time())
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
            envelope["id"] = str(random_uuid())
        envelope["expiration_date"] = iso(now + self.settings.message_ttl)
        envelope["message"] = self.entitlement(call)
        return self.signer.sign(envelope)

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
    inner = doc.get("message")
    message: dict[str, Any] = inner if isinstance(inner, dict) else doc
    found: dict[str, str] = {}
    if isinstance(message.get("type"), str):
        found["axinom.request_info.type"] = scrub(message["type"], 64)
    device = message.get("device_info")
    if isinstance(device, dict):
        for key, value in device.items():
            if isinstance(value, str | int | bool) and key != "client_token":
                found[f"axinom.device_info.{key}"] = scrub(str(value), 120)
    return found
