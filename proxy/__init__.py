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
  the state operations (:class:`UseOp`, :class:`SessionOp`, :class:`RateOp`,
  :class:`RecordOp`) with their key names (:func:`state_key`, :func:`slot_tag`);
- license sessions (:mod:`proxy.sessions`): :class:`LicenseSession`,
  :func:`license_id`, :func:`find_session`, :func:`session_ops`;
- the admin API's view of plugins: :class:`StatusBoard` (``services.status``),
  :class:`KeySourceStatus`, :class:`SessionDirectory`, :class:`SessionInfo`;
- addresses and encodings: :class:`CidrSet`, :func:`parse_network`,
  :func:`b64url_encode`, :func:`parse_key_id`...;
- vendor adapters: :class:`VendorSpec`, :class:`VendorCall`,
  :class:`UpstreamRequest`, :class:`VendorLicense`, :class:`UpstreamSettings`...
- the decision log: :class:`AuditLog` (``services.audit``), its
  :class:`Decision` records, :data:`VENDOR_CORRELATION_KEY`, the vendor-neutral device
  facts (:data:`VENDOR_DEVICE_PREFIX`, :func:`vendor_device`);
  the request's stage times (:class:`StageClock`).
"""

# Before anything imports grpc: grpcio reads its environment once, on import.
# isort: split
from proxy import grpc_env as _grpc_env

_grpc_env.apply()

import pluggy  # noqa: E402

from proxy.hookspecs import PROJECT_NAME  # noqa: E402

#: Marks a hook implementation: ``@hookimpl def proxy_authorize(ctx, principal): ...``
hookimpl = pluggy.HookimplMarker(PROJECT_NAME)

from proxy.audit import (  # noqa: E402
    VENDOR_DEVICE_PREFIX,
    AuditLog,
    Decision,
    DecisionOutcome,
    vendor_device,
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
from proxy.randomness import random_uuid  # noqa: E402
from proxy.secrets import Secret, resolve_secret  # noqa: E402
from proxy.services import Services  # noqa: E402
from proxy.sessions import (  # noqa: E402
    LicenseSession,
    SessionTracking,
    find_session,
    license_id,
    session_ops,
)
from proxy.stages import StageClock  # noqa: E402
from proxy.state import (  # noqa: E402
    Op,
    Outcome,
    RateOp,
    Record,
    RecordMode,
    RecordOp,
    SessionMode,
    SessionOp,
    StateStore,
    StateUnavailable,
    UseOp,
    slot_tag,
    state_key,
)
from proxy.statusboard import (  # noqa: E402
    KeySourceStatus,
    SessionDirectory,
    SessionInfo,
    StatusBoard,
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
    "VENDOR_DEVICE_PREFIX",
    "AddressKey",
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
    "KeySourceStatus",
    "LicenseRequest",
    "LicenseResult",
    "LicenseSession",
    "Op",
    "Outcome",
    "Policy",
    "PolicyGap",
    "PolicyNotRenderable",
    "Principal",
    "ProxyError",
    "RateOp",
    "Reason",
    "Record",
    "RecordMode",
    "RecordOp",
    "RequestContext",
    "RequestType",
    "Seconds",
    "Secret",
    "Services",
    "SessionDirectory",
    "SessionInfo",
    "SessionMode",
    "SessionOp",
    "SessionTracking",
    "StageClock",
    "StateStore",
    "StateUnavailable",
    "StatusBoard",
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
    "find_session",
    "hookimpl",
    "key_id_uuid",
    "license_id",
    "parse_address",
    "parse_key_id",
    "parse_network",
    "random_uuid",
    "read_network_file",
    "resolve_secret",
    "session_ops",
    "slot_tag",
    "state_key",
    "validation_errors",
    "vendor_device",
]

# The adapter kit (proxy.adapters) and what adapters need besides it.
# isort: split
from proxy.adapters.answers import (  # noqa: E402
    PLAYREADY_SERVER_FAULTS,
    check_license,
    check_playready_answer,
    check_widevine_answer,
    json_object,
    playready_fault_error,
    soap_fault,
)
from proxy.adapters.jws import JwsSigner  # noqa: E402
from proxy.adapters.prepare import capped, check_window, prepare  # noqa: E402
from proxy.adapters.rendering import (  # noqa: E402
    LICENSE_FIELDS,
    RENEWAL_FIELDS,
    TRACK_FIELDS,
    Rendering,
    config_gaps,
    renders_nothing,
    request_gaps,
    restricts,
)
from proxy.adapters.sandbox import VendorSandbox  # noqa: E402
from proxy.adapters.vendor_errors import (  # noqa: E402
    bad_response,
    header_metadata,
    json_message,
    log_vendor_body,
    scrub,
    status_error,
    vendor_error,
    vendor_message,
)
from proxy.adapters.widevine import (  # noqa: E402
    TRANSIENT_STATUSES as WIDEVINE_TRANSIENT_STATUSES,
)
from proxy.adapters.widevine import WIDEVINE as WIDEVINE_RENDERING  # noqa: E402
from proxy.adapters.widevine import policy_overrides as widevine_policy_overrides  # noqa: E402
from proxy.adapters.widevine import track_selection as widevine_track_selection  # noqa: E402
from proxy.adapters.wire import (  # noqa: E402
    OCTET_STREAM,
    PLAYREADY_CONTENT_TYPE,
    PLAYREADY_SOAP_ACTION,
    b64,
    b64decode_any,
    fairplay_content_id,
    guid,
    json_bytes,
    key_material,
    widevine_content_id,
)
from proxy.challenge.fairplay import ContentId, ContentIdConvention  # noqa: E402
from proxy.upstream import retry_after_seconds  # noqa: E402
from proxy.vendors import LocalAdapter, TranslatingAdapter  # noqa: E402

__all__ += [
    "LICENSE_FIELDS",
    "OCTET_STREAM",
    "PLAYREADY_CONTENT_TYPE",
    "PLAYREADY_SERVER_FAULTS",
    "PLAYREADY_SOAP_ACTION",
    "RENEWAL_FIELDS",
    "TRACK_FIELDS",
    "WIDEVINE_RENDERING",
    "WIDEVINE_TRANSIENT_STATUSES",
    "ContentId",
    "ContentIdConvention",
    "JwsSigner",
    "LocalAdapter",
    "Rendering",
    "TranslatingAdapter",
    "VendorSandbox",
    "b64",
    "b64decode_any",
    "bad_response",
    "capped",
    "check_license",
    "check_playready_answer",
    "check_widevine_answer",
    "check_window",
    "config_gaps",
    "fairplay_content_id",
    "guid",
    "header_metadata",
    "json_bytes",
    "json_message",
    "json_object",
    "key_material",
    "log_vendor_body",
    "playready_fault_error",
    "prepare",
    "renders_nothing",
    "request_gaps",
    "restricts",
    "retry_after_seconds",
    "scrub",
    "soap_fault",
    "status_error",
    "vendor_error",
    "vendor_message",
    "widevine_content_id",
    "widevine_policy_overrides",
    "widevine_track_selection",
]
