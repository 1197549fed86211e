"""drm-license-proxy: the core, and the kit a plugin author needs, exported from one place.

Built-in plugins import only what this module exports, the request and policy
models (:mod:`proxy.model`, :mod:`proxy.policy`), the challenge parsers
(:mod:`proxy.challenge`) and, in tests, :mod:`proxy.testing`: exactly what an
outside team's plugin may use (a test holds them to it). Everything else under
``proxy`` is the core's own and may change.

- hooks: :data:`hookimpl` marks an implementation (the hooks are in
  :mod:`proxy.hookspecs`);
- refusing: :class:`ProxyError` with a :class:`Reason`;
- configuration: :class:`ConfigContext`, :class:`StrictModel` and the field types
  :data:`Duration`, :data:`Seconds`, :data:`ConfigPath`, :class:`Secret`;
- the request: :class:`RequestContext`, :class:`LicenseRequest`,
  :class:`ChallengeInfo`, :class:`Principal`, :class:`LicenseResult`...;
- shared services: :class:`Services` (clock, upstream client, state store) and
  the state operations (:class:`UseOp`, :class:`SessionOp`, :class:`RateOp`);
- addresses and encodings: :class:`CidrSet`, :func:`parse_network`,
  :func:`b64url_encode`, :func:`parse_key_id`...;
- vendor adapters: :class:`VendorSpec`, :class:`VendorCall`,
  :class:`UpstreamRequest`, :class:`VendorLicense`, :class:`UpstreamSettings`...
- the decision log: :class:`AuditLog` (``services.audit``), its records
  :class:`Decision` and :class:`AdminAction`, :data:`VENDOR_CORRELATION_KEY`;
  the request's stage times (:class:`StageClock`).
"""

import pluggy

from proxy.hookspecs import PROJECT_NAME

#: Marks a hook implementation: ``@hookimpl def proxy_authorize(ctx, principal): ...``
hookimpl = pluggy.HookimplMarker(PROJECT_NAME)

from proxy.audit import (  # noqa: E402
    AdminAction,
    AuditLog,
    Decision,
    DecisionOutcome,
)
from proxy.cidr import (  # noqa: E402
    AddressKey,
    CidrSet,
    address_key,
    parse_address,
    parse_network,
    read_network_file,
)
from proxy.clock import Clock  # noqa: E402
from proxy.config import CleanupContext, ConfigContext, validation_errors  # noqa: E402
from proxy.encoding import b64url_decode, b64url_encode, parse_key_id  # noqa: E402
from proxy.errors import ConfigError, ProxyError, Reason  # noqa: E402
from proxy.fields import ConfigPath, Duration, Seconds, StrictModel  # noqa: E402
from proxy.model import (  # noqa: E402
    ChallengeInfo,
    ClientInfo,
    DecisionStep,
    DrmSystem,
    LicenseRequest,
    LicenseResult,
    Principal,
    RequestContext,
    RequestType,
    key_id_uuid,
)
from proxy.policy import EffectivePolicy, Policy, TrackRules, TrackType  # noqa: E402
from proxy.secrets import Secret, resolve_secret  # noqa: E402
from proxy.services import Services  # noqa: E402
from proxy.stages import StageClock  # noqa: E402
from proxy.state import (  # noqa: E402
    Op,
    Outcome,
    RateOp,
    SessionMode,
    SessionOp,
    StateStore,
    StateUnavailable,
    UseOp,
)
from proxy.upstream import UpstreamSettings  # noqa: E402
from proxy.upstream.correlation import VENDOR_CORRELATION_KEY  # noqa: E402
from proxy.vendors import (  # noqa: E402
    BackendSettings,
    PolicyGap,
    PolicyNotRenderable,
    UpstreamRequest,
    UpstreamResponse,
    VendorCall,
    VendorLicense,
    VendorSpec,
)

__all__ = [
    "VENDOR_CORRELATION_KEY",
    "AddressKey",
    "AdminAction",
    "AuditLog",
    "BackendSettings",
    "ChallengeInfo",
    "CidrSet",
    "CleanupContext",
    "ClientInfo",
    "Clock",
    "ConfigContext",
    "ConfigError",
    "ConfigPath",
    "Decision",
    "DecisionOutcome",
    "DecisionStep",
    "DrmSystem",
    "Duration",
    "EffectivePolicy",
    "LicenseRequest",
    "LicenseResult",
    "Op",
    "Outcome",
    "Policy",
    "PolicyGap",
    "PolicyNotRenderable",
    "Principal",
    "ProxyError",
    "RateOp",
    "Reason",
    "RequestContext",
    "RequestType",
    "Seconds",
    "Secret",
    "Services",
    "SessionMode",
    "SessionOp",
    "StageClock",
    "StateStore",
    "StateUnavailable",
    "StrictModel",
    "TrackRules",
    "TrackType",
    "UpstreamRequest",
    "UpstreamResponse",
    "UpstreamSettings",
    "UseOp",
    "VendorCall",
    "VendorLicense",
    "VendorSpec",
    "address_key",
    "b64url_decode",
    "b64url_encode",
    "hookimpl",
    "key_id_uuid",
    "parse_address",
    "parse_key_id",
    "parse_network",
    "read_network_file",
    "resolve_secret",
    "validation_errors",
]
