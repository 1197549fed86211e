"""Helpers for the access-rule tests: one call over gRPC or HTTP, seen as the client sees it."""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass
from typing import Any

import grpc
from google.rpc import error_details_pb2, status_pb2

from licenseproxy.v1 import license_proxy_pb2 as pb
from proxy import ChallengeInfo, DrmSystem, RequestType, hookimpl
from tests.conftest import clearkey_request

KID = uuid.UUID("4060a865-8878-4267-9cbf-91ae5bae1e72").bytes
KID2 = uuid.UUID("9eb4050d-e44b-4802-932e-27d75083e266").bytes


@dataclass
class Answer:
    """What a client saw."""

    ok: bool
    reason: str | None = None
    status: Any = None
    retry_after: str | None = None
    detail: str = ""
    metadata: dict[str, str] | None = None


async def grpc_call(
    proxy: Any,
    token: str | None,
    *,
    challenge: bytes | None = None,
    metadata: tuple[tuple[str, str], ...] = (),
    deadline: float | None = None,
    **fields: Any,
) -> Answer:
    """``AcquireLicense`` over gRPC (``deadline``: the client's, in seconds from now)."""
    request = pb.AcquireLicenseRequest(
        drm_system=fields.pop("drm_system", pb.DRM_SYSTEM_CLEARKEY),
        challenge=challenge if challenge is not None else clearkey_request(KID),
        token=token or "",
        **fields,
    )
    try:
        await proxy.stub().AcquireLicense(request, metadata=metadata, timeout=deadline)
    except grpc.aio.AioRpcError as exc:
        trailers = dict(exc.trailing_metadata() or ())
        if "grpc-status-details-bin" not in trailers:  # the client's own deadline, say
            return Answer(False, None, exc.code(), detail=exc.details() or "")
        status = status_pb2.Status.FromString(trailers["grpc-status-details-bin"])
        info = error_details_pb2.ErrorInfo()
        assert status.details[0].Unpack(info)
        return Answer(
            False,
            info.reason,
            exc.code(),
            trailers.get("retry-after"),
            status.message,
            dict(info.metadata),
        )
    return Answer(True, status=grpc.StatusCode.OK)


async def http_call(
    proxy: Any,
    http: Any,
    token: str | None,
    *,
    challenge: bytes | None = None,
    headers: dict[str, str] | None = None,
    drm: str = "clearkey",
    **query: str,
) -> Answer:
    """``POST /v1/licenses/{drm}`` over the HTTP bridge (ClearKey by default)."""
    sent = dict(headers or {})
    if token:
        sent["Authorization"] = f"Bearer {token}"
    body = challenge if challenge is not None else clearkey_request(KID)
    url = f"{proxy.http_url}/v1/licenses/{drm}"
    async with http.post(url, data=body, headers=sent, params=query) as response:
        data = await response.read()
        if response.status == 200:
            return Answer(True, status=200)
        assert response.content_type == "application/problem+json"
        problem = json.loads(data)
        return Answer(
            False,
            problem["reason"],
            response.status,
            response.headers.get("Retry-After"),
            problem["detail"],
            problem.get("metadata"),
        )


class TypedRequests:
    """An inspector that reads ``{"test_type": "renewal", ...}`` ClearKey-like challenges,
    so tests can send renewals and service-certificate requests through a real proxy."""

    @hookimpl(tryfirst=True)
    def proxy_inspect_challenge(self, ctx: Any) -> ChallengeInfo | None:
        """Claim challenges that carry a ``test_type``."""
        try:
            doc = json.loads(ctx.request.challenge)
        except ValueError:
            return None
        if not isinstance(doc, dict) or "test_type" not in doc:
            return None
        return ChallengeInfo(
            drm_system=DrmSystem.CLEARKEY,
            request_type=RequestType(doc["test_type"]),
            payload=ctx.request.challenge,
            key_ids=(KID,),
            content_id=doc.get("content_id"),
        )


def typed_challenge(request_type: str, content_id: str | None = None) -> bytes:
    """A challenge :class:`TypedRequests` reads as ``request_type``."""
    doc: dict[str, Any] = {"test_type": request_type}
    if content_id is not None:
        doc["content_id"] = content_id
    return json.dumps(doc).encode()


def release_challenge() -> bytes:
    """A W3C ClearKey release message (no ``type``): a RELEASE request."""
    return clearkey_request(KID, session_type=None)
