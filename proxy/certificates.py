"""Certificates players fetch before their first license request, for
``GET /v1/certificates/{widevine|fairplay}`` and gRPC ``GetCertificate``.

- **Widevine**: the service certificate of the backend a policy would use for the
  request: the policy is elected as for a license (the token's claims, when a token is
  read; the request's ``content_id``), and the in-band service-certificate request
  (``08 04``) goes to its backends in failover order, through the dispatcher's
  per-backend cache (``service_certificate_cache``). shaka's ``serverCertificateUri``
  and DASH-IF's ``Certurl`` take the answer as it comes.
- **FairPlay**: the application certificate given in config
  (``challenge.fairplay.application_certificate``), else the one the elected policy's
  first FairPlay backend serves at its ``fairplay_certificate_url``, cached the same way.

Certificates are public (every player gets the same one), so the access rules do not
run and a token is neither needed nor read unless ``server.certificates.require_token``
says so. Nothing here is a license: no token use is spent, no session slot taken, and
the license observers are not called.
"""

from __future__ import annotations

import base64
import binascii
import functools
import hashlib
import logging
from dataclasses import dataclass
from typing import cast

from licenseproxy.v1 import license_proxy_pb2 as pb
from proxy import convert, metrics
from proxy.challenge.widevine import SERVICE_CERTIFICATE_REQUEST
from proxy.errors import ProxyError, Reason
from proxy.logs import request_id_var
from proxy.model import (
    ChallengeInfo,
    DrmSystem,
    LicenseRequest,
    Principal,
    RequestContext,
    RequestType,
)
from proxy.pipeline import Pipeline
from proxy.policy import EffectivePolicy
from proxy.upstream.settings import setting
from proxy.vendors import Backend, UpstreamRequest, UpstreamResponse, VendorLicense

log = logging.getLogger("proxy.certificates")

#: The DRM systems whose players fetch a certificate.
CERTIFICATE_DRMS = frozenset({DrmSystem.WIDEVINE, DrmSystem.FAIRPLAY})
#: Who fetches a certificate when no token is read: claims are empty, so only policies
#: that require no claim can be elected for it.
ANONYMOUS = Principal(subject=None, issuer=None, claims={})
#: Largest certificate accepted from a backend.
MAX_CERTIFICATE_BYTES = 64 * 1024


@dataclass(frozen=True, slots=True)
class Certificate:
    """A certificate ready for a player, and where it came from."""

    data: bytes
    drm_system: DrmSystem
    max_age: float
    """Seconds a player (or a cache) may keep it."""
    source: str
    """``config`` or ``backend``."""
    backend: str = ""
    policy: str = ""

    @property
    def etag(self) -> str:
        """A strong HTTP entity tag for the bytes."""
        return '"' + hashlib.sha256(self.data).hexdigest()[:32] + '"'


def certificate_request(drm: DrmSystem, request: LicenseRequest) -> LicenseRequest:
    """``request`` (from a transport, with its headers, client and content id) made into a
    certificate request for ``drm``: the Widevine one carries the ``08 04`` challenge."""
    if drm not in CERTIFICATE_DRMS:
        raise ProxyError(
            Reason.DRM_NOT_SUPPORTED,
            f"certificates are served for widevine and fairplay; {drm.value} players fetch none",
        )
    request.drm_system = drm
    request.challenge = SERVICE_CERTIFICATE_REQUEST if drm is DrmSystem.WIDEVINE else b""
    return request


async def fetch_certificate(pipeline: Pipeline, request: LicenseRequest) -> Certificate:
    """The certificate for ``request.drm_system`` (see the module docstring).

    :raises ProxyError: the token's reasons when one is required; NO_MATCHING_POLICY,
        DRM_NOT_SUPPORTED, BACKEND_NOT_CONFIGURED, or the backend's UPSTREAM_* reasons.
    """
    assert request.drm_system in CERTIFICATE_DRMS
    ctx = pipeline.new_context(request)
    token = request_id_var.set(ctx.request_id)
    try:
        certificate = await _fetch(pipeline, ctx)
    except ProxyError as error:
        _count(ctx, "denied", error.reason.value)
        raise
    finally:
        request_id_var.reset(token)
    _count(ctx, "certificate", "")
    return certificate


async def _fetch(pipeline: Pipeline, ctx: RequestContext) -> Certificate:
    drm = cast(DrmSystem, ctx.request.drm_system)
    routes = pipeline.server.certificates
    principal = await pipeline.authenticate(ctx) if routes.require_token else ANONYMOUS
    configured = pipeline.certificates.get(drm)
    if configured is not None:
        return Certificate(configured, drm, routes.max_age, "config")
    if drm is DrmSystem.WIDEVINE:
        await pipeline.inspect(ctx)
    else:
        ctx.challenge = ChallengeInfo(drm, RequestType.SERVICE_CERTIFICATE, payload=b"")
    policy = await pipeline.host.select_policy(ctx, principal)
    if policy is None:
        raise ProxyError(Reason.NO_MATCHING_POLICY, "no policy matches this certificate request")
    ctx.policy = policy
    names = await pipeline.host.select_backends(ctx, principal, policy)
    if not names:
        raise ProxyError(Reason.BACKEND_NOT_CONFIGURED, f"policy {policy.name!r} names no backend")
    if drm is DrmSystem.WIDEVINE:
        backend, answer = await pipeline.dispatcher.issue(ctx, principal, policy, names)
        ttl = float(setting(backend.settings, "service_certificate_cache"))
        return Certificate(answer.license, drm, ttl, "backend", backend.name, policy.name)
    return await _fairplay_from_backend(pipeline, ctx, policy, names)


async def _fairplay_from_backend(
    pipeline: Pipeline, ctx: RequestContext, policy: EffectivePolicy, names: list[str]
) -> Certificate:
    serving = False
    for name in names:
        backend = pipeline.backends.get(name)
        if backend is None:
            raise ProxyError(Reason.BACKEND_NOT_CONFIGURED, f"backend {name!r} is not configured")
        if DrmSystem.FAIRPLAY not in backend.drm_systems:
            continue
        serving = True
        url = setting(backend.settings, "fairplay_certificate_url")
        if not url or backend.local:
            continue
        ttl = float(setting(backend.settings, "service_certificate_cache"))
        answer = await pipeline.dispatcher.certificates.fetch(
            f"{name}/fairplay",
            ttl,
            functools.partial(_download, pipeline, ctx, backend, url),
            deadline=ctx.request.deadline,
        )
        return Certificate(answer.license, DrmSystem.FAIRPLAY, ttl, "backend", name, policy.name)
    if not serving:
        raise ProxyError(
            Reason.DRM_NOT_SUPPORTED, f"no backend of policy {policy.name!r} serves fairplay"
        )
    raise ProxyError(
        Reason.BACKEND_NOT_CONFIGURED,
        "no FairPlay application certificate is configured: set "
        "challenge.fairplay.application_certificate, or fairplay_certificate_url on a backend",
    )


async def _download(
    pipeline: Pipeline, ctx: RequestContext, backend: Backend, url: str
) -> VendorLicense:
    upstream = pipeline.services.upstream
    if upstream is None:
        raise ProxyError(Reason.INTERNAL, "no upstream client")
    certificate = await upstream.exchange(
        backend,
        UpstreamRequest(url=url, method="GET", headers={"Accept": "*/*"}),
        lambda response: _certificate_bytes(backend.name, response),
        request_id=ctx.request_id,
        deadline=None,
        clock=pipeline.services.clock,
    )
    return VendorLicense(certificate, "application/octet-stream")


def _certificate_bytes(backend: str, response: UpstreamResponse) -> bytes:
    """A certificate as vendors serve it: DER, PEM, or base64 text of the DER."""
    if response.status >= 500:
        raise ProxyError(
            Reason.UPSTREAM_UNAVAILABLE,
            f"backend {backend!r} answered the certificate request with HTTP {response.status}",
            metadata={"backend": backend, "upstream_status": str(response.status)},
        )
    if response.status != 200:
        raise ProxyError(
            Reason.UPSTREAM_REJECTED,
            f"backend {backend!r} refused the certificate request (HTTP {response.status})",
            metadata={"backend": backend, "upstream_status": str(response.status)},
        )
    der = der_certificate(response.body)
    if der is None:
        raise ProxyError(
            Reason.UPSTREAM_BAD_RESPONSE,
            f"backend {backend!r} answered the certificate request with no certificate",
            metadata={"backend": backend},
        )
    return der


def der_certificate(data: bytes) -> bytes | None:
    """The DER bytes of a certificate given as DER, PEM or base64 text; None otherwise.

    Only the outer form is checked (a DER ``SEQUENCE``): players parse the rest.
    """
    if not data or len(data) > MAX_CERTIFICATE_BYTES:
        return None
    if data[:1] == b"\x30":
        return data
    text = data.strip()
    if text.startswith(b"-----BEGIN"):
        lines = [line for line in text.splitlines() if not line.startswith(b"-----")]
        text = b"".join(lines)
    try:
        der = base64.b64decode(b"".join(text.split()), validate=True)
    except (binascii.Error, ValueError):
        return None
    return der if der[:1] == b"\x30" else None


def request_from_proto(
    message: pb.GetCertificateRequest, request: LicenseRequest
) -> LicenseRequest:
    """A certificate request from a ``GetCertificateRequest``; ``request`` carries the
    caller's metadata, address and request id."""
    drm = convert.drm_from_proto(message.drm_system)
    if drm is None:
        raise ProxyError(
            Reason.REQUEST_INVALID, "drm_system must be DRM_SYSTEM_WIDEVINE or DRM_SYSTEM_FAIRPLAY"
        )
    request.token = message.token or None
    request.content_id = message.content_id or None
    return certificate_request(drm, request)


def response_to_proto(certificate: Certificate, request_id: str) -> pb.GetCertificateResponse:
    """The ``GetCertificateResponse`` for ``certificate``."""
    return pb.GetCertificateResponse(
        certificate=certificate.data,
        drm_system=convert.DRM_TO_PROTO[certificate.drm_system],
        source=certificate.source,
        backend=certificate.backend,
        policy=certificate.policy,
        max_age_seconds=int(certificate.max_age),
        request_id=request_id,
    )


def _count(ctx: RequestContext, outcome: str, reason: str) -> None:
    drm = ctx.request.drm_system.value if ctx.request.drm_system else "unknown"
    metrics.REQUESTS.labels(ctx.request.transport, drm, outcome, reason).inc()


__all__ = [
    "ANONYMOUS",
    "CERTIFICATE_DRMS",
    "Certificate",
    "certificate_request",
    "der_certificate",
    "fetch_certificate",
    "request_from_proto",
    "response_to_proto",
]
