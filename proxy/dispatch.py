"""Calls the selected backends in order: local adapters directly, translating
adapters through the upstream client, failing over on outages only."""

from __future__ import annotations

import logging

from proxy import metrics
from proxy.errors import ProxyError, Reason
from proxy.model import Principal, RequestContext
from proxy.policy import EffectivePolicy
from proxy.services import Services
from proxy.vendors import Backend, LocalAdapter, VendorCall, VendorLicense

log = logging.getLogger("proxy.dispatch")

#: Failures after which the next backend is tried. A vendor's refusal
#: (UPSTREAM_REJECTED) is an answer, never a reason to ask another vendor.
FAILOVER_REASONS = frozenset(
    {Reason.UPSTREAM_UNAVAILABLE, Reason.UPSTREAM_TIMEOUT, Reason.UPSTREAM_BAD_RESPONSE}
)


class Dispatcher:
    """Issues a license from the first backend that can, in the given order."""

    def __init__(self, backends: dict[str, Backend], services: Services) -> None:
        self.backends = backends
        self.services = services

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
        for name in names:
            backend = self.backends.get(name)
            if backend is None:
                raise ProxyError(
                    Reason.BACKEND_NOT_CONFIGURED, f"backend {name!r} is not configured"
                )
            if drm not in backend.spec.drm_systems:
                ctx.note(f"backend {name} does not serve {drm.value}")
                continue
            call = VendorCall(ctx, ctx.challenge, principal, policy, name)
            try:
                vendor_license = await self._call(backend, call)
            except ProxyError as error:
                metrics.BACKEND_CALLS.labels(name, error.reason.value).inc()
                if error.reason not in FAILOVER_REASONS:
                    raise
                log.warning("backend %s failed (%s); trying the next", name, error.reason.value)
                last_error = error
                continue
            metrics.BACKEND_CALLS.labels(name, "ok").inc()
            return backend, vendor_license
        if last_error is not None:
            raise last_error
        raise ProxyError(
            Reason.DRM_NOT_SUPPORTED,
            f"no backend of policy {policy.name!r} serves {drm.value} licenses",
        )

    async def _call(self, backend: Backend, call: VendorCall) -> VendorLicense:
        adapter = backend.adapter
        if isinstance(adapter, LocalAdapter):
            try:
                return await adapter.issue(call)
            except ProxyError:
                raise
            except Exception:
                log.exception("backend %s failed to issue a license", backend.name)
                raise ProxyError(Reason.INTERNAL, "the backend failed") from None
        try:
            request = adapter.build_request(call)
        except ProxyError:
            raise
        except Exception:
            log.exception("backend %s failed to build its request", backend.name)
            raise ProxyError(Reason.INTERNAL, "the backend request could not be built") from None
        response = await self.services.upstream.send(
            backend, request, request_id=call.request_id, deadline=call.ctx.request.deadline
        )
        try:
            return adapter.parse_response(call, response)
        except ProxyError:
            raise
        except Exception:
            log.exception("backend %s answered in a form its adapter can't read", backend.name)
            raise ProxyError(
                Reason.UPSTREAM_BAD_RESPONSE, f"backend {backend.name!r} answered unreadably"
            ) from None
