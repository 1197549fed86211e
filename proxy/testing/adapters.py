"""Unit-testing a vendor adapter with no network."""

from __future__ import annotations

from typing import Any

from proxy.services import Services


def vendor_call(
    challenge: Any,
    policy: Any,
    *,
    principal: Any = None,
    backend: str = "test",
    services: Services | None = None,
    **request: Any,
) -> Any:
    """A :class:`~proxy.vendors.VendorCall` for unit-testing an adapter with no network.

    ``challenge`` is a :class:`~proxy.model.ChallengeInfo`, ``policy`` an
    :class:`~proxy.policy.EffectivePolicy`; ``request`` sets
    :class:`~proxy.model.LicenseRequest` fields (``content_id``, ``client``,
    ``metadata``...).
    """
    from proxy.model import LicenseRequest, Principal, RequestContext
    from proxy.vendors import VendorCall

    principal = principal or Principal(subject="alice", issuer="test", claims={"sub": "alice"})
    license_request = LicenseRequest(challenge=challenge.payload, request_id="req-1", **request)
    ctx = RequestContext(
        request=license_request,
        services=services or Services(),
        request_id="req-1",
        challenge=challenge,
        principal=principal,
        policy=policy,
    )
    return VendorCall(ctx, challenge, principal, policy, backend)
