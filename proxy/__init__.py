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
from proxy.adapters.prepare import PolicyNotRenderable, capped, check_window, prepare  # noqa: E402
from proxy.adapters.rendering import (  # noqa: E402
    LICENSE_FIELDS,
    RENEWAL_FIELDS,
    TRACK_FIELDS,
    PolicyGap,
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
from proxy.encoding import b64url_decode, b64url_encode, parse_key_id  # noqa: E402
from proxy.upstream import UpstreamSettings, retry_after_seconds  # noqa: E402
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
    "LocalAdapter",
    "PolicyGap",
    "PolicyNotRenderable",
    "Rendering",
    "TranslatingAdapter",
    "UpstreamSettings",
    "VendorSandbox",
    "b64",
    "b64decode_any",
    "b64url_decode",
    "b64url_encode",
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
    "parse_key_id",
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
