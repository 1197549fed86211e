"""Translations between the protobuf API and the pipeline's model, shared by gRPC and the
JSON routes of the HTTP bridge so both decide exactly alike."""

from __future__ import annotations

import time
from collections.abc import Mapping

from google.protobuf import struct_pb2

from licenseproxy.v1 import license_proxy_pb2 as pb
from proxy.challenge.initdata import InitDataInfo
from proxy.challenge.report import shown_details
from proxy.clientaddr import normalize_ip
from proxy.errors import ProxyError, Reason
from proxy.model import (
    ChallengeInfo,
    ClientInfo,
    DrmSystem,
    LicenseRequest,
    LicenseResult,
    RequestType,
    key_id_uuid,
)

DRM_FROM_PROTO: dict[pb.DrmSystem, DrmSystem | None] = {
    pb.DRM_SYSTEM_UNSPECIFIED: None,
    pb.DRM_SYSTEM_WIDEVINE: DrmSystem.WIDEVINE,
    pb.DRM_SYSTEM_PLAYREADY: DrmSystem.PLAYREADY,
    pb.DRM_SYSTEM_FAIRPLAY: DrmSystem.FAIRPLAY,
    pb.DRM_SYSTEM_CLEARKEY: DrmSystem.CLEARKEY,
}
DRM_TO_PROTO = {v: k for k, v in DRM_FROM_PROTO.items() if v is not None}
REQUEST_TYPE_TO_PROTO = {
    RequestType.NEW: pb.REQUEST_TYPE_NEW,
    RequestType.RENEWAL: pb.REQUEST_TYPE_RENEWAL,
    RequestType.RELEASE: pb.REQUEST_TYPE_RELEASE,
    RequestType.SERVICE_CERTIFICATE: pb.REQUEST_TYPE_SERVICE_CERTIFICATE,
}
MAX_KEY_ID_HINTS = 64
MAX_CLIENT_FIELD = 512


def drm_from_proto(value: pb.DrmSystem) -> DrmSystem | None:
    """The DRM system of a proto enum value; REQUEST_INVALID for a value this build doesn't know."""
    try:
        return DRM_FROM_PROTO[value]
    except KeyError:
        raise ProxyError(
            Reason.REQUEST_INVALID, f"unknown drm_system {value}", field="drm_system"
        ) from None


def key_id_hints(values: list[bytes] | tuple[bytes, ...]) -> tuple[bytes, ...]:
    """Validated key id hints: 16 bytes each, at most 64."""
    if len(values) > MAX_KEY_ID_HINTS:
        raise ProxyError(
            Reason.REQUEST_INVALID, f"more than {MAX_KEY_ID_HINTS} key ids", field="key_ids"
        )
    for index, value in enumerate(values):
        if len(value) != 16:
            raise ProxyError(
                Reason.REQUEST_INVALID, "a key id is not 16 bytes", field=f"key_ids[{index}]"
            )
    return tuple(values)


def client_from_proto(
    message: pb.ClientInfo, *, peer: str | None, resolved_ip: str | None, trusted: bool
) -> ClientInfo:
    """The client facts: the message's fields count only when the request originates from a
    trusted caller (see :func:`proxy.clientaddr.resolve_client`); otherwise they are ignored."""
    if trusted:
        claimed_ip = normalize_ip(message.ip_address) if message.ip_address else None
        if message.ip_address and claimed_ip is None:
            raise ProxyError(
                Reason.REQUEST_INVALID,
                "client.ip_address is not an IP address",
                field="client.ip_address",
            )
        for name, value in (("device_id", message.device_id), ("user_agent", message.user_agent)):
            if len(value) > MAX_CLIENT_FIELD:
                raise ProxyError(
                    Reason.REQUEST_INVALID,
                    f"client fields are limited to {MAX_CLIENT_FIELD} characters",
                    field=f"client.{name}",
                )
        return ClientInfo(
            ip_address=claimed_ip or resolved_ip,
            device_id=message.device_id or None,
            user_agent=message.user_agent or None,
            peer=peer,
            trusted=True,
        )
    return ClientInfo(ip_address=resolved_ip, peer=peer, trusted=False)


def acquire_request(
    message: pb.AcquireLicenseRequest,
    *,
    transport: str,
    request_id: str,
    headers: Mapping[str, str],
    peer: str | None,
    resolved_ip: str | None,
    trusted: bool,
    timeout: float | None = None,
) -> LicenseRequest:
    """A pipeline request from an ``AcquireLicenseRequest`` message."""
    return LicenseRequest(
        challenge=message.challenge,
        drm_system=drm_from_proto(message.drm_system),
        token=message.token or None,
        content_id=message.content_id or None,
        key_ids=key_id_hints(list(message.key_ids)),
        client=client_from_proto(
            message.client, peer=peer, resolved_ip=resolved_ip, trusted=trusted
        ),
        metadata=dict(message.metadata),
        dry_run=message.dry_run,
        dry_run_gated=not trusted,
        transport=transport,
        headers=headers,
        request_id=request_id,
        deadline=time.monotonic() + timeout if timeout is not None else None,
    )


def inspect_request(
    message: pb.InspectChallengeRequest,
    *,
    transport: str,
    request_id: str,
    headers: Mapping[str, str],
    peer: str | None,
    resolved_ip: str | None,
    trusted: bool,
) -> LicenseRequest:
    """A pipeline request from an ``InspectChallengeRequest`` message."""
    return LicenseRequest(
        challenge=message.challenge,
        drm_system=drm_from_proto(message.drm_system),
        token=message.token or None,
        content_id=message.content_id or None,
        key_ids=key_id_hints(list(message.key_ids)),
        client=ClientInfo(ip_address=resolved_ip, peer=peer, trusted=trusted),
        transport=transport,
        headers=headers,
        request_id=request_id,
    )


def license_response(result: LicenseResult) -> pb.AcquireLicenseResponse:
    """The ``AcquireLicenseResponse`` for a pipeline result."""
    response = pb.AcquireLicenseResponse(
        license=result.license,
        drm_system=DRM_TO_PROTO[result.drm_system],
        backend=result.backend,
        vendor=result.vendor,
        policy=result.policy,
        key_ids=list(result.key_ids),
        request_id=result.request_id,
        vendor_metadata=result.vendor_metadata,
        request_type=REQUEST_TYPE_TO_PROTO[result.request_type],
        content_type=result.content_type,
        dry_run=result.dry_run,
    )
    for step in result.trace:
        response.trace.add(
            hook=step.hook, plugin=step.plugin, verdict=step.verdict, reasons=step.reasons
        )
    if result.effective_policy is not None:
        policy = struct_pb2.Struct()
        policy.update(result.effective_policy)
        response.effective_policy.CopyFrom(policy)
    return response


def inspect_response(
    info: ChallengeInfo | InitDataInfo, request_id: str
) -> pb.InspectChallengeResponse:
    """The ``InspectChallengeResponse`` for what an inspector found, or for init data."""
    if isinstance(info, InitDataInfo):
        return _init_data_response(info, request_id)
    return pb.InspectChallengeResponse(
        drm_system=DRM_TO_PROTO[info.drm_system],
        request_type=REQUEST_TYPE_TO_PROTO[info.request_type],
        key_ids=list(info.key_ids),
        key_id_uuids=info.key_id_uuids,
        content_id=info.content_id or "",
        client=info.client,
        warnings=info.warnings,
        request_id=request_id,
        format="challenge",
    )


def _init_data_response(info: InitDataInfo, request_id: str) -> pb.InspectChallengeResponse:
    drm = info.drm_system
    return pb.InspectChallengeResponse(
        drm_system=DRM_TO_PROTO[drm] if drm is not None else pb.DRM_SYSTEM_UNSPECIFIED,
        request_type=pb.REQUEST_TYPE_UNSPECIFIED,
        key_ids=list(info.key_ids),
        key_id_uuids=info.key_id_uuids,
        content_id=info.content_id or "",
        warnings=info.warnings,
        request_id=request_id,
        format=info.format,
        protection_systems=[
            pb.ProtectionSystemData(
                system_id=system.system_uuid,
                system=system.system,
                pssh_version=system.pssh_version,
                key_id_uuids=[key_id_uuid(k) for k in system.key_ids],
                content_id=system.content_id or "",
                details={key: str(value) for key, value in shown_details(system.details).items()},
            )
            for system in info.systems
        ],
    )
