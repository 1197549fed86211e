"""Widevine license sessions for the renewal, retry and playback tests: what a CDM sends over
a viewing (a new license, renewals, a release), built with the project's challenge builders."""

from __future__ import annotations

import uuid
from typing import Any

from licenseproxy.v1 import license_proxy_pb2 as pb
from proxy.challenge import samples
from proxy.testing import proxy_config
from tests.access_support import Answer, grpc_call, http_call

KID = uuid.UUID("0a8b1c2d-3e4f-4a5b-8c6d-7e8f9a0b1c2d").bytes
KID_HD = uuid.UUID("1b2c3d4e-5f60-4172-8394-a5b6c7d8e9f0").bytes
#: The vendor the Widevine requests go to (its emulator), elected by the token's claim.
VENDOR = "widevine_cloud"


def new_license(
    request_id: bytes, content: bytes = b"movie-1", key_ids: tuple[bytes, ...] = (KID,)
) -> bytes:
    """A Widevine license request for a new session the CDM names ``request_id``."""
    return samples.widevine_license_request(
        key_ids=key_ids, content_id=content, request_id=request_id
    )


def renewal(request_id: bytes) -> bytes:
    """A renewal of the license issued for ``request_id`` (it names no content, no key)."""
    return samples.widevine_license_request(
        form="existing_license", request_type=2, request_id=request_id
    )


def release(request_id: bytes) -> bytes:
    """A release of the license issued for ``request_id``."""
    return samples.widevine_license_request(
        form="existing_license", request_type=3, request_id=request_id
    )


async def widevine(proxy: Any, token: str, challenge: bytes, **fields: Any) -> Answer:
    """``AcquireLicense`` for a Widevine challenge over gRPC."""
    return await grpc_call(
        proxy, token, challenge=challenge, drm_system=pb.DRM_SYSTEM_WIDEVINE, **fields
    )


async def widevine_http(
    proxy: Any, http: Any, token: str, challenge: bytes, **kwargs: Any
) -> Answer:
    """``POST /v1/licenses/widevine`` for a Widevine challenge."""
    return await http_call(proxy, http, token, challenge=challenge, drm="widevine", **kwargs)


def sessions_config(
    sandbox: Any,
    state: dict[str, Any],
    *,
    grace: str | None = "15m",
    access: dict[str, Any] | None = None,
    **extra: Any,
) -> dict[str, Any]:
    """The embedded default routed to the vendor emulators, its issuer with ``renewal_grace``,
    the state store ``state`` and the ``access`` rules."""
    config = sandbox.config(proxy_config({"access": {"state": state, **(access or {})}, **extra}))
    if grace is not None:
        config["auth"]["issuers"][0]["renewal_grace"] = grace
    return config
