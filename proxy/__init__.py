"""drm-license-proxy: the core. Plugin authors need only what this module exports.

- :data:`hookimpl` marks hook implementations (see :mod:`proxy.hookspecs`);
- :class:`ProxyError` and :class:`Reason` deny a request with a reason code;
- the request model (:class:`RequestContext`, :class:`ChallengeInfo`,
  :class:`Principal`, :class:`LicenseResult`) and the policy model
  (:class:`Policy`, :class:`EffectivePolicy`);
- vendor adapters register a :class:`VendorSpec`.
"""

import pluggy

from proxy.hookspecs import PROJECT_NAME

#: Marks a hook implementation: ``@hookimpl def proxy_authorize(ctx, principal): ...``
hookimpl = pluggy.HookimplMarker(PROJECT_NAME)

from proxy.config import ConfigContext, StrictModel  # noqa: E402
from proxy.errors import ConfigError, ProxyError, Reason  # noqa: E402
from proxy.model import (  # noqa: E402
    ChallengeInfo,
    ClientInfo,
    DrmSystem,
    LicenseRequest,
    LicenseResult,
    Principal,
    RequestContext,
    RequestType,
)
from proxy.policy import EffectivePolicy, Policy, TrackRules, TrackType  # noqa: E402
from proxy.vendors import (  # noqa: E402
    BackendSettings,
    UpstreamRequest,
    UpstreamResponse,
    VendorCall,
    VendorLicense,
    VendorSpec,
)

__all__ = [
    "BackendSettings",
    "ChallengeInfo",
    "ClientInfo",
    "ConfigContext",
    "ConfigError",
    "DrmSystem",
    "EffectivePolicy",
    "LicenseRequest",
    "LicenseResult",
    "Policy",
    "Principal",
    "ProxyError",
    "Reason",
    "RequestContext",
    "RequestType",
    "StrictModel",
    "TrackRules",
    "TrackType",
    "UpstreamRequest",
    "UpstreamResponse",
    "VendorCall",
    "VendorLicense",
    "VendorSpec",
    "hookimpl",
]
