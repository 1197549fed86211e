"""Widevine challenges: a ``SignedMessage`` holding a ``LicenseRequest``, or ``08 04``.

The protobuf messages are our own (``protos/licenseproxy/widevine/v1``), holding
only the fields read here; the C parser (upb) bounds recursion and never reads
past the buffer, and every repeated field is bounded again here before use.
Key ids come from whichever of the four ``ContentIdentification`` forms the CDM
used: Widevine pssh data, a WebM key id, an existing license (renewal and
release: no key ids), or CENC init data (whole ``pssh`` boxes v0/v1, or the bare
Widevine pssh data).
"""

from __future__ import annotations

from typing import Any

from google.protobuf.message import DecodeError

from licenseproxy.widevine.v1 import license_request_pb2 as pb
from proxy.challenge.common import (
    MAX_KEY_IDS,
    KeyIds,
    Warnings,
    content_id_text,
    invalid,
    safe_text,
)
from proxy.challenge.pssh import (
    COMMON_SYSTEM_ID,
    WIDEVINE_SYSTEM_ID,
    looks_like_pssh,
    parse_pssh_boxes,
)
from proxy.model import ChallengeInfo, DrmSystem, RequestType

DRM = "Widevine"
#: The service-certificate request every CDM may send before a license request.
SERVICE_CERTIFICATE_REQUEST = b"\x08\x04"
#: Most ``pssh_data`` entries and ``client_info`` facts read from one request.
MAX_PSSH_DATA = 16
MAX_CLIENT_INFO = 32

_Signed = pb.SignedMessage
_Request = pb.LicenseRequest
_InitData = pb.LicenseRequest.ContentIdentification.InitData

_REQUEST_TYPES = {
    _Request.REQUEST_TYPE_UNSPECIFIED: RequestType.NEW,
    _Request.REQUEST_TYPE_NEW: RequestType.NEW,
    _Request.REQUEST_TYPE_RENEWAL: RequestType.RENEWAL,
    _Request.REQUEST_TYPE_RELEASE: RequestType.RELEASE,
}
_LICENSE_TYPES = {1: "streaming", 2: "offline", 3: "automatic"}
_TOKEN_TYPES = {
    0: "keybox",
    1: "drm_device_certificate",
    2: "remote_attestation_certificate",
    3: "oem_device_certificate",
}
_HDCP = {0: "none", 1: "v1", 2: "v2", 3: "v2.1", 4: "v2.2", 5: "v2.3", 0xFF: "no_digital_output"}
_PROTOCOLS = {20: "2.0", 21: "2.1", 22: "2.2"}
_PSSH_TYPES = {0: "single", 1: "entitlement", 2: "entitled_key"}


def looks_like_widevine(body: bytes) -> bool:
    """A cheap sniff: a SignedMessage starts with its type (license or certificate
    request) or, when the type is left out, with its ``msg`` field."""
    return body[:2] in (b"\x08\x01", SERVICE_CERTIFICATE_REQUEST) or body[:1] == b"\x12"


def parse_widevine(body: bytes) -> ChallengeInfo:
    """Read a Widevine challenge.

    :raises ProxyError: CHALLENGE_INVALID, with a short reason, when it is unreadable.
    """
    signed = _decode(_Signed, body, "not a Widevine SignedMessage")
    if signed.type == _Signed.MESSAGE_TYPE_SERVICE_CERTIFICATE_REQUEST:
        return ChallengeInfo(
            drm_system=DrmSystem.WIDEVINE,
            request_type=RequestType.SERVICE_CERTIFICATE,
            payload=body,
        )
    if signed.type not in (_Signed.MESSAGE_TYPE_UNSPECIFIED, _Signed.MESSAGE_TYPE_LICENSE_REQUEST):
        raise invalid(DRM, f"message type {signed.type} is not a license request")
    if not signed.HasField("msg"):
        raise invalid(DRM, "the signed message holds no license request")
    request = _decode(_Request, signed.msg, "the license request is not readable")
    return _Reader(body, signed, request).read()


def _decode(message: Any, data: bytes, reason: str) -> Any:
    try:
        return message.FromString(data)
    except (DecodeError, RecursionError, ValueError):
        raise invalid(DRM, reason) from None


def decode_pssh_data(raw: bytes) -> Any:
    """A ``WidevinePsshData`` message (the payload of a Widevine ``pssh`` box).

    :raises ProxyError: CHALLENGE_INVALID when it is not one, or lists too many key ids.
    """
    data = _decode(pb.WidevinePsshData, raw, "the pssh data is not Widevine pssh data")
    if len(data.key_ids) > MAX_KEY_IDS:
        raise invalid(DRM, f"the pssh data lists more than {MAX_KEY_IDS} key ids")
    return data


def pssh_data_details(data: Any, details: dict[str, Any]) -> None:
    """Add what a ``WidevinePsshData`` says beyond key ids and content id to ``details``
    (values already there are kept: the first pssh data read wins)."""
    if data.HasField("protection_scheme"):
        details.setdefault("protection_scheme", _four_cc(data.protection_scheme))
    if data.HasField("provider"):
        details.setdefault("widevine_provider", safe_text(data.provider))
    if data.HasField("policy"):
        details.setdefault("widevine_policy", safe_text(data.policy))
    if data.HasField("type"):
        details.setdefault("widevine_pssh_type", _PSSH_TYPES.get(data.type, str(data.type)))
    if data.HasField("crypto_period_index"):
        details.setdefault("widevine_crypto_period_index", data.crypto_period_index)
    if data.HasField("video_feature"):
        details.setdefault("widevine_video_feature", safe_text(data.video_feature))
    if data.group_ids:
        details.setdefault("widevine_group_id_count", len(data.group_ids))


def _four_cc(value: int) -> str:
    raw = value.to_bytes(4, "big")
    return (
        raw.decode("ascii")
        if all(0x61 <= b <= 0x7A or 0x30 <= b <= 0x39 for b in raw)
        else raw.hex()
    )


class _Reader:
    """Collects what one license request says, field by field."""

    def __init__(self, body: bytes, signed: Any, request: Any) -> None:
        self.body = body
        self.signed = signed
        self.request = request
        self.key_ids = KeyIds(DRM)
        self.warnings = Warnings()
        self.client: dict[str, str] = {}
        self.stated: dict[str, str] = {}
        self.details: dict[str, Any] = {}
        self.content_id: bytes | None = None

    def read(self) -> ChallengeInfo:
        """Read the request type, content, client and the rest into a ChallengeInfo."""
        request = self.request
        try:
            request_type = _REQUEST_TYPES[request.type]
        except KeyError:
            raise invalid(
                DRM, f"request type {request.type} is not new, renewal or release"
            ) from None
        self._content(request)
        self._client(request)
        if not self.signed.HasField("signature"):
            self.warnings.add("the license request is not signed")
        if request.HasField("request_time"):
            self.details["widevine_request_time"] = request.request_time
        if request.HasField("protocol_version"):
            version = request.protocol_version
            self.client["protocol_version"] = _PROTOCOLS.get(version, str(version))
        if request_type is RequestType.NEW and not self.key_ids and self.content_id is None:
            self.warnings.add("the challenge names no key id and no content id")
        return ChallengeInfo(
            drm_system=DrmSystem.WIDEVINE,
            request_type=request_type,
            payload=self.body,
            key_ids=self.key_ids.result(),
            content_id=content_id_text(self.content_id) if self.content_id else None,
            # What the proxy worked out wins over a same-named fact the client stated.
            client={**self.stated, **self.client},
            warnings=self.warnings.result(),
            details=self.details,
        )

    # -- content identification ------------------------------------------------------

    def _content(self, request: Any) -> None:
        if not request.HasField("content_id"):
            raise invalid(DRM, "the license request names no content")
        content = request.content_id
        form = content.WhichOneof("content_id_variant")
        if form is None:
            raise invalid(DRM, "the content identification is empty")
        self.details["widevine_content_form"] = form
        if form == "widevine_pssh_data":
            self._pssh_form(content.widevine_pssh_data)
        elif form == "webm_key_id":
            webm = content.webm_key_id
            self.key_ids.add(webm.header, "the WebM key id")
            self._license_type(webm)
        elif form == "existing_license":
            self._existing_license(content.existing_license)
        else:
            self._init_data_form(content.init_data)
        if form != "existing_license" and request.type in (
            _Request.REQUEST_TYPE_RENEWAL,
            _Request.REQUEST_TYPE_RELEASE,
        ):
            self.warnings.add("a renewal or release that names no existing license")

    def _license_type(self, form: Any) -> None:
        if form.HasField("license_type"):
            value = form.license_type
            self.client["license_type"] = _LICENSE_TYPES.get(value, str(value))
        if form.HasField("request_id"):
            self.details["widevine_request_id"] = bytes(form.request_id)

    def _pssh_form(self, form: Any) -> None:
        self._license_type(form)
        entries = form.pssh_data
        if not entries:
            raise invalid(DRM, "the pssh data form holds no pssh data")
        if len(entries) > MAX_PSSH_DATA:
            raise invalid(DRM, f"more than {MAX_PSSH_DATA} pssh data entries")
        for entry in entries:
            if looks_like_pssh(entry):
                self._boxes(entry)
            else:
                self._pssh_data(entry)

    def _init_data_form(self, form: Any) -> None:
        self._license_type(form)
        data = form.init_data
        if form.init_data_type == _InitData.INIT_DATA_TYPE_WEBM:
            self.details["widevine_init_data_type"] = "webm"
            self.key_ids.add(data, "the WebM key id")
            return
        if form.init_data_type not in (
            _InitData.INIT_DATA_TYPE_UNSPECIFIED,
            _InitData.INIT_DATA_TYPE_CENC,
        ):
            raise invalid(DRM, f"init data type {form.init_data_type} is not cenc or webm")
        self.details["widevine_init_data_type"] = "cenc"
        if not data:
            raise invalid(DRM, "the init data is empty")
        if looks_like_pssh(data):
            self._boxes(data)
        else:
            self._pssh_data(data)

    def _boxes(self, data: bytes) -> None:
        read_any = False
        for box in parse_pssh_boxes(data, DRM):
            if box.system_id == WIDEVINE_SYSTEM_ID:
                read_any = True
                for key_id in box.key_ids:
                    self.key_ids.add(key_id, "a pssh box key id")
                if box.data:
                    self._pssh_data(box.data)
            elif box.system_id == COMMON_SYSTEM_ID:
                read_any = True
                for key_id in box.key_ids:
                    self.key_ids.add(key_id, "a pssh box key id")
        if not read_any:
            self.warnings.add("the init data holds no Widevine or common pssh box")

    def _pssh_data(self, raw: bytes) -> None:
        data = decode_pssh_data(raw)
        for key_id in data.key_ids:
            self.key_ids.add(key_id, "a pssh data key id")
        if data.HasField("content_id") and data.content_id:
            if self.content_id is None:
                self.content_id = bytes(data.content_id)
                self.details["widevine_content_id"] = self.content_id
            elif data.content_id != self.content_id:
                self.warnings.add("the pssh data name different content ids; the first is used")
        pssh_data_details(data, self.details)

    def _existing_license(self, form: Any) -> None:
        if not form.HasField("license_id"):
            raise invalid(DRM, "the existing license names no license id")
        license_id = form.license_id
        for field in ("request_id", "session_id", "purchase_id", "provider_session_token"):
            if license_id.HasField(field):
                self.details[f"widevine_license_{field}"] = bytes(getattr(license_id, field))
        if license_id.HasField("version"):
            self.details["widevine_license_version"] = license_id.version
        if license_id.HasField("type"):
            value = license_id.type
            self.client["license_type"] = _LICENSE_TYPES.get(value, str(value))
        for field in ("seconds_since_started", "seconds_since_last_played"):
            if form.HasField(field):
                self.details[f"widevine_{field}"] = getattr(form, field)

    # -- client facts --------------------------------------------------------------------

    def _client(self, request: Any) -> None:
        encrypted = request.HasField("encrypted_client_id")
        if request.HasField("client_id"):
            if encrypted:
                self.warnings.add("both a plain and an encrypted client id are present")
            self._client_id(request.client_id)
        if encrypted:
            info = request.encrypted_client_id
            if info.HasField("provider_id"):
                self.client["service_provider_id"] = safe_text(info.provider_id)
            if info.HasField("service_certificate_serial_number"):
                serial = bytes(info.service_certificate_serial_number[:64])
                self.details["widevine_service_certificate_serial"] = serial
        elif not request.HasField("client_id"):
            self.warnings.add("the license request carries no client id")
        self.client["privacy_mode"] = "true" if encrypted else "false"

    def _client_id(self, client_id: Any) -> None:
        facts = client_id.client_info
        if len(facts) > MAX_CLIENT_INFO:
            self.warnings.add(f"only the first {MAX_CLIENT_INFO} client facts are read")
        for fact in facts[:MAX_CLIENT_INFO]:
            name = safe_text(fact.name, 64)
            if name and name.replace("_", "").isalnum() and name.isascii():
                self.stated[name.lower()] = safe_text(fact.value)
        value = client_id.type
        self.client["token_type"] = _TOKEN_TYPES.get(value, str(value))
        if client_id.HasField("client_capabilities"):
            caps = client_id.client_capabilities
            if caps.HasField("max_hdcp_version"):
                hdcp = caps.max_hdcp_version
                self.client["max_hdcp_version"] = _HDCP.get(hdcp, str(hdcp))
            for field in (
                "oem_crypto_api_version",
                "resource_rating_tier",
                "srm_version",
                "analog_output_capabilities",
            ):
                if caps.HasField(field):
                    self.client[field] = str(getattr(caps, field))
            for field in ("anti_rollback_usage_table", "can_disable_analog_output"):
                if caps.HasField(field):
                    self.client[field] = "true" if getattr(caps, field) else "false"
