"""Calls the selected backends in order: local adapters directly, translating
adapters through the upstream client, failing over on outages only.

A backend that can't serve the request is skipped before anything is sent: one
that does not serve the DRM (its vendor doesn't, or its settings give no URL
for it), and one that can't render a rule of the request's policy, as its
vendor's declared renderings say (:class:`~proxy.adapters.PolicyNotRenderable`,
from :func:`~proxy.adapters.prepare`, which runs for every call).

Widevine service-certificate requests are answered from a per-backend cache
when the backend's ``service_certificate_cache`` allows it: the certificate is
the same for every player, so one fetch serves them all until it expires.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, replace
from typing import cast

from proxy import metrics
from proxy.adapters.prepare import prepare
from proxy.errors import ProxyError, Reason
from proxy.model import DrmSystem, Principal, RequestContext, RequestType
from proxy.policy import EffectivePolicy
from proxy.services import Clock, Services
from proxy.telemetry import Telemetry
from proxy.upstream.correlation import keep_correlation_id
from proxy.vendors import (
    Backend,
    LocalAdapter,
    PolicyNotRenderable,
    TranslatingAdapter,
    UpstreamResponse,
    VendorCall,
    VendorLicense,
)

log = logging.getLogger("proxy.dispatch")

#: Failures after which the next backend is tried. A vendor's refusal
#: (UPSTREAM_REJECTED) is an answer, never a reason to ask another vendor.
FAILOVER_REASONS = frozenset(
    {Reason.UPSTREAM_UNAVAILABLE, Reason.UPSTREAM_TIMEOUT, Reason.UPSTREAM_BAD_RESPONSE}
)


@dataclass(slots=True)
class _Cached:
    expires: float
    license: VendorLicense


class ServiceCertificateCache:
    """Widevine service certificates per backend, each kept for its backend's configured time.

    Concurrent misses for one backend share a single fetch. That fetch runs as a
    task of its own, bounded by the backend's timeout, not by the deadline of the
    request that started it: each waiter gives up on its own deadline, and one
    caller's short deadline or cancellation never fails the others.
    """

    def __init__(self, clock: Clock) -> None:
        self.clock = clock
        self._entries: dict[str, _Cached] = {}
        self._pending: dict[str, asyncio.Task[VendorLicense]] = {}

    def get(self, backend: str) -> VendorLicense | None:
        """The cached certificate answer of ``backend``, unless expired."""
        entry = self._entries.get(backend)
        if entry is None:
            return None
        if self.clock.monotonic() >= entry.expires:
            del self._entries[backend]
            return None
        return entry.license

    async def fetch(
        self,
        backend: str,
        ttl: float,
        fetch: Callable[[], Awaitable[VendorLicense]],
        *,
        deadline: float | None = None,
    ) -> VendorLicense:
        """Return the cached answer, or wait (until ``deadline``, a ``time.monotonic()``
        instant) for the one fetch every concurrent caller shares."""
        cached = self.get(backend)
        if cached is not None:
            return _copy(cached, "hit")
        task = self._pending.get(backend)
        how = "shared"
        if task is None:
            task = asyncio.create_task(self._fill(backend, ttl, fetch))
            # Retrieved here so that a fetch every waiter gave up on is not reported
            # as "exception never retrieved".
            task.add_done_callback(_retrieve)
            self._pending[backend] = task
            how = "miss"
        return _copy(await _wait(task, deadline), how)

    async def _fill(
        self, backend: str, ttl: float, fetch: Callable[[], Awaitable[VendorLicense]]
    ) -> VendorLicense:
        try:
            answer = await fetch()
        finally:
            self._pending.pop(backend, None)
        self._entries[backend] = _Cached(self.clock.monotonic() + ttl, answer)
        return answer


def _retrieve(task: asyncio.Task[VendorLicense]) -> None:
    if not task.cancelled():
        task.exception()


async def _wait(task: asyncio.Task[VendorLicense], deadline: float | None) -> VendorLicense:
    """The task's answer; the waiter's deadline or cancellation leaves the task running."""
    shielded = asyncio.shield(task)
    if deadline is None:
        return await shielded
    try:
        async with asyncio.timeout(max(0.0, deadline - time.monotonic())):
            return await shielded
    except TimeoutError:
        raise ProxyError(
            Reason.UPSTREAM_TIMEOUT,
            "the caller's deadline passed while the service certificate was fetched",
            metadata={"deadline": "caller"},
        ) from None


def _copy(answer: VendorLicense, how: str) -> VendorLicense:
    metadata = dict(answer.vendor_metadata)
    metadata["service_certificate_cache"] = how
    return replace(answer, vendor_metadata=metadata)


class Dispatcher:
    """Issues a license from the first backend that can, in the given order."""

    def __init__(
        self, backends: dict[str, Backend], services: Services, telemetry: Telemetry | None = None
    ) -> None:
        self.backends = backends
        self.services = services
        self.telemetry = telemetry
        self.certificates = ServiceCertificateCache(services.clock)
        self._ok_counters = {name: metrics.BACKEND_CALLS.labels(name, "ok") for name in backends}
        # Read once: a setting most vendors lack costs an exception per lookup.
        self._certificate_ttls = {
            name: float(getattr(backend.settings, "service_certificate_cache", 0) or 0)
            for name, backend in backends.items()
        }

    async def issue(
        self,
        ctx: RequestContext,
        principal: Principal,
        policy: EffectivePolicy,
        names: list[str],
    ) -> tuple[Backend, VendorLicense]:
        """The license from the first backend that issues it; the last outage otherwise."""
        assert ctx.challenge is not None
        drm = ctx.challenge.drm_system
        last_error: ProxyError | None = None
        refusal: PolicyNotRenderable | None = None
        for name in names:
            backend = self.backends.get(name)
            if backend is None:
                raise ProxyError(
                    Reason.BACKEND_NOT_CONFIGURED, f"backend {name!r} is not configured"
                )
            if drm not in backend.drm_systems:
                ctx.note(f"backend {name} does not serve {drm.value}")
                continue
            deadline = ctx.request.deadline
            if deadline is not None and deadline <= time.monotonic():
                raise last_error or ProxyError(
                    Reason.UPSTREAM_TIMEOUT,
                    "the caller's deadline passed before a backend answered",
                )
            call = VendorCall(ctx, ctx.challenge, principal, policy, name)
            try:
                # The never-looser check runs here for every backend, whatever its adapter
                # does: the adapter's own prepare() then returns this result.
                call.license = prepare(
                    call, backend.rendering(drm), backend.spec.name, self.services.clock.time()
                )
                vendor_license = await self._call(backend, call)
            except PolicyNotRenderable as error:
                # Nothing was sent: another backend may carry the rule.
                metrics.BACKEND_CALLS.labels(name, error.reason.value).inc()
                ctx.note(f"backend {name} can't render {error.metadata['policy_fields']}")
                refusal = refusal or error
                continue
            except ProxyError as error:
                metrics.BACKEND_CALLS.labels(name, error.reason.value).inc()
                if error.reason not in FAILOVER_REASONS:
                    raise
                log.warning("backend %s failed (%s); trying the next", name, error.reason.value)
                ctx.note(f"backend {name} failed with {error.reason.value}")
                last_error = error
                continue
            self._ok_counters[name].inc()
            return backend, vendor_license
        if last_error is not None:
            raise last_error
        if refusal is not None:
            raise refusal
        raise ProxyError(
            Reason.DRM_NOT_SUPPORTED,
            f"no backend of policy {policy.name!r} serves {drm.value} licenses",
        )

    async def _call(self, backend: Backend, call: VendorCall) -> VendorLicense:
        challenge = call.challenge
        ttl = self._certificate_ttls.get(backend.name)
        if ttl is None:
            ttl = self._certificate_ttls[backend.name] = float(
                getattr(backend.settings, "service_certificate_cache", 0) or 0
            )
        if (
            ttl > 0
            and challenge.drm_system is DrmSystem.WIDEVINE
            and challenge.request_type is RequestType.SERVICE_CERTIFICATE
        ):
            return await self.certificates.fetch(
                backend.name,
                ttl,
                lambda: self._call_backend(backend, call, deadline=None),
                deadline=call.ctx.request.deadline,
            )
        return await self._call_backend(backend, call, deadline=call.ctx.request.deadline)

    async def _call_backend(
        self, backend: Backend, call: VendorCall, *, deadline: float | None
    ) -> VendorLicense:
        if backend.local:
            local = cast(LocalAdapter, backend.adapter)
            try:
                return await local.issue(call)
            except ProxyError:
                raise
            except Exception:
                log.exception("backend %s failed to issue a license", backend.name)
                raise ProxyError(Reason.INTERNAL, "the backend failed") from None
        adapter = cast(TranslatingAdapter, backend.adapter)
        try:
            request = adapter.build_request(call)
        except ProxyError:
            raise
        except Exception:
            log.exception("backend %s failed to build its request", backend.name)
            raise ProxyError(Reason.INTERNAL, "the backend request could not be built") from None
        declared = backend.spec.correlation_headers

        def parse(response: UpstreamResponse) -> VendorLicense:
            # The vendor's own id for the exchange goes with the license or the refusal.
            try:
                answer = adapter.parse_response(call, response)
            except ProxyError as error:
                keep_correlation_id(error.metadata, response.headers, declared, call.request_id)
                raise
            keep_correlation_id(answer.vendor_metadata, response.headers, declared, call.request_id)
            return answer

        return await self.services.upstream.exchange(
            backend,
            request,
            parse,
            request_id=call.request_id,
            deadline=deadline,
            clock=self.services.clock,
            telemetry=self.telemetry,
        )
