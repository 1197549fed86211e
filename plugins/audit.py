"""The ``audit`` plugin: one decision-log record per license decision, from the observers.

Issued, refused, dry run or cancelled (the caller went away), over either
transport: each request the pipeline answers reaches ``proxy_license_issued``
or ``proxy_license_denied`` exactly once, and this plugin turns what the
request context holds into a :class:`proxy.Decision` for the core's decision
log (``[audit]``, ``ctx.services.audit``). The record is built from values the
request already holds; encoding and writing happen on the log's own thread.
"""

from __future__ import annotations

from typing import Any

from proxy import (
    VENDOR_CORRELATION_KEY,
    ConfigContext,
    Decision,
    DecisionOutcome,
    LicenseResult,
    ProxyError,
    RequestContext,
    hookimpl,
    vendor_device,
)


class AuditPlugin:
    """Writes every license decision to the decision log."""

    def __init__(self) -> None:
        self.enabled = True
        self._vendors: dict[str, str] = {}

    @hookimpl
    def proxy_configure(self, config: ConfigContext) -> None:
        """Idle when ``[audit]`` is off; learn each backend's vendor (refusals name the backend)."""
        self.enabled = config.services.audit.enabled
        backends: Any = config.get("backends", {})
        if isinstance(backends, dict):
            self._vendors = {
                name: str(section["vendor"])
                for name, section in backends.items()
                if isinstance(section, dict) and "vendor" in section
            }

    @hookimpl
    def proxy_license_issued(self, ctx: RequestContext, result: LicenseResult) -> None:
        """Record an issued license, or a dry run's verdict."""
        outcome: DecisionOutcome = "dry_run" if result.dry_run else "issued"
        decision = _decision(ctx, outcome)
        decision.backend = result.backend or None
        decision.vendor = result.vendor or None
        decision.key_ids = result.key_ids or decision.key_ids
        decision.vendor_correlation_id = result.vendor_metadata.get(VENDOR_CORRELATION_KEY)
        decision.vendor_device = vendor_device(result.vendor_metadata)
        ctx.services.audit.decision(decision)

    @hookimpl
    def proxy_license_denied(self, ctx: RequestContext, error: ProxyError) -> None:
        """Record a refusal (with its reason code and stage), or a cancelled request."""
        decision = _decision(ctx, "cancelled" if ctx.cancelled else "denied")
        decision.reason = error.reason.value
        decision.stage = ctx.stages.stage
        metadata = error.metadata
        backend = ctx.backend or metadata.get("backend")
        if backend is not None:
            decision.backend = backend
            decision.vendor = metadata.get("vendor") or self._vendors.get(backend)
        decision.vendor_code = metadata.get("vendor_code")
        decision.vendor_correlation_id = metadata.get(VENDOR_CORRELATION_KEY)
        ctx.services.audit.decision(decision)


def _decision(ctx: RequestContext, outcome: DecisionOutcome) -> Decision:
    request = ctx.request
    challenge = ctx.challenge
    principal = ctx.principal
    drm = ctx.drm_system
    return Decision(
        time=ctx.services.clock.time(),
        request_id=ctx.request_id,
        transport=request.transport,
        outcome=outcome,
        client_address=request.client.ip_address,
        drm=drm.value if drm is not None else None,
        request_type=challenge.request_type.value if challenge is not None else None,
        key_ids=ctx.key_ids,
        content_id=ctx.content_id,
        subject=principal.subject if principal is not None else None,
        issuer=principal.issuer if principal is not None else None,
        policy=ctx.policy.name if ctx.policy is not None else None,
        stages=ctx.stages,
    )
