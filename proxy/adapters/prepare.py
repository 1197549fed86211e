"""The check every license request passes before an adapter renders it.

:func:`prepare` refuses a request outside the license window (``NOT_ENTITLED``),
``can_play = false`` where no vendor field says it, and rules the backend can't
render (:class:`PolicyNotRenderable`: they came from a trusted claim, or from a
backend a plugin chose); then it caps the durations by the time left before
``expiry``. The dispatcher runs it for every call with the backend's declared
rendering before the adapter sees the call, so no adapter can skip it; an
adapter's own call returns that result.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from datetime import UTC, datetime

from proxy.adapters.call import VendorCall
from proxy.adapters.rendering import Rendering, request_gaps
from proxy.errors import ProxyError, Reason
from proxy.model import DrmSystem, RequestType
from proxy.policy import LicenseSettings


class PolicyNotRenderable(ProxyError):
    """The request's policy has a rule the backend can't put in its vendor request.

    Refused rather than dropped (``UPSTREAM_REJECTED``, ``vendor_code =
    POLICY_NOT_RENDERABLE``, the rules in ``policy_fields``); no vendor was asked,
    so the dispatcher tries the policy's next backend.
    """

    def __init__(self, backend: str, vendor: str, drm: DrmSystem, fields: Sequence[str]) -> None:
        super().__init__(
            Reason.UPSTREAM_REJECTED,
            f"backend {backend!r} can't enforce {', '.join(fields)} for {drm.value}: "
            "the license would be looser than the policy",
            metadata={
                "backend": backend,
                "vendor": vendor,
                "vendor_code": "POLICY_NOT_RENDERABLE",
                "policy_fields": ",".join(fields),
            },
        )


def check_window(settings: LicenseSettings, now: float) -> None:
    """``NOT_ENTITLED`` before ``start`` and from ``expiry`` on."""
    if settings.start is not None and now < _timestamp(settings.start):
        raise ProxyError(
            Reason.NOT_ENTITLED,
            f"the policy's license window opens at {_show(settings.start)}",
            metadata={"license_window": "not_started"},
        )
    if settings.expiry is not None and now >= _timestamp(settings.expiry):
        raise ProxyError(
            Reason.NOT_ENTITLED,
            f"the policy's license window closed at {_show(settings.expiry)}",
            metadata={"license_window": "closed"},
        )


def capped(settings: LicenseSettings, now: float) -> LicenseSettings:
    """``settings`` with ``license_duration`` (and a longer ``rental_duration``) cut to the
    whole seconds left before ``expiry``; unchanged without an expiry."""
    if settings.expiry is None:
        return settings
    left = math.floor(_timestamp(settings.expiry) - now)
    if left < 1:
        raise ProxyError(
            Reason.NOT_ENTITLED,
            f"the policy's license window closes at {_show(settings.expiry)}",
            metadata={"license_window": "closed"},
        )
    updates: dict[str, int] = {}
    if not settings.license_duration or settings.license_duration > left:
        updates["license_duration"] = left
    if settings.rental_duration and settings.rental_duration > left:
        updates["rental_duration"] = left
    return settings.model_copy(update=updates) if updates else settings


def prepare(call: VendorCall, rendering: Rendering, vendor: str, now: float) -> LicenseSettings:
    """The license settings an adapter renders for ``call``, after the shared checks.

    Certificate requests and releases issue no license and pass as they are.
    Otherwise: the license window (``NOT_ENTITLED``), ``can_play = false`` where the
    vendor has no field for it (``UPSTREAM_REJECTED``, ``POLICY_FORBIDS_PLAY``), the
    rules ``rendering`` can't carry (:class:`PolicyNotRenderable`); then the
    durations capped by the time left before ``expiry``.

    The core prepares every call with the backend's declared rendering before the
    adapter sees it and keeps the result in ``call.license``; an adapter's own call
    then returns that (unit tests with no dispatcher get the check run here).
    """
    if call.license is not None:
        return call.license
    return _prepared(call, rendering, vendor, now)


def _prepared(call: VendorCall, rendering: Rendering, vendor: str, now: float) -> LicenseSettings:
    settings = call.policy.license
    if call.challenge.request_type in (RequestType.SERVICE_CERTIFICATE, RequestType.RELEASE):
        return settings
    drm = call.challenge.drm_system
    check_window(settings, now)
    if settings.can_play is False and "can_play" not in rendering.license:
        raise ProxyError(
            Reason.UPSTREAM_REJECTED,
            f"the policy does not allow playback, and {vendor} has no {drm.value} field "
            "for a license that can't play",
            metadata={"vendor": vendor, "vendor_code": "POLICY_FORBIDS_PLAY"},
        )
    gaps = request_gaps(call.policy, drm, rendering)
    if gaps:
        raise PolicyNotRenderable(call.backend, vendor, drm, gaps)
    return capped(settings, now)


def _timestamp(instant: datetime) -> float:
    if instant.tzinfo is None:
        instant = instant.replace(tzinfo=UTC)
    return instant.timestamp()


def _show(instant: datetime) -> str:
    return (instant if instant.tzinfo else instant.replace(tzinfo=UTC)).isoformat()
