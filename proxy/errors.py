"""One error model for every transport: a reason code and its gRPC and HTTP mappings."""

from __future__ import annotations

from enum import StrEnum

import grpc


class Reason(StrEnum):
    """Every reason a license request can be denied or fail (DESIGN.md, Errors)."""

    TOKEN_MISSING = "TOKEN_MISSING"
    TOKEN_MALFORMED = "TOKEN_MALFORMED"
    TOKEN_SIGNATURE_INVALID = "TOKEN_SIGNATURE_INVALID"
    TOKEN_EXPIRED = "TOKEN_EXPIRED"
    TOKEN_NOT_YET_VALID = "TOKEN_NOT_YET_VALID"
    TOKEN_ISSUER_MISMATCH = "TOKEN_ISSUER_MISMATCH"
    TOKEN_AUDIENCE_MISMATCH = "TOKEN_AUDIENCE_MISMATCH"
    TOKEN_ALGORITHM_REJECTED = "TOKEN_ALGORITHM_REJECTED"
    TOKEN_KEY_UNKNOWN = "TOKEN_KEY_UNKNOWN"
    TOKEN_CLAIM_MISSING = "TOKEN_CLAIM_MISSING"
    IP_NOT_ALLOWED = "IP_NOT_ALLOWED"
    DEVICE_NOT_ALLOWED = "DEVICE_NOT_ALLOWED"
    ORIGIN_NOT_ALLOWED = "ORIGIN_NOT_ALLOWED"
    NOT_ENTITLED = "NOT_ENTITLED"
    NO_MATCHING_POLICY = "NO_MATCHING_POLICY"
    TOKEN_REPLAYED = "TOKEN_REPLAYED"
    CONCURRENCY_LIMIT_EXCEEDED = "CONCURRENCY_LIMIT_EXCEEDED"
    RATE_LIMITED = "RATE_LIMITED"
    CHALLENGE_INVALID = "CHALLENGE_INVALID"
    DRM_NOT_SUPPORTED = "DRM_NOT_SUPPORTED"
    REQUEST_INVALID = "REQUEST_INVALID"
    CHALLENGE_TOO_LARGE = "CHALLENGE_TOO_LARGE"
    UPSTREAM_REJECTED = "UPSTREAM_REJECTED"
    UPSTREAM_UNAVAILABLE = "UPSTREAM_UNAVAILABLE"
    UPSTREAM_BAD_RESPONSE = "UPSTREAM_BAD_RESPONSE"
    UPSTREAM_TIMEOUT = "UPSTREAM_TIMEOUT"
    STATE_UNAVAILABLE = "STATE_UNAVAILABLE"
    DEPENDENCY_UNAVAILABLE = "DEPENDENCY_UNAVAILABLE"
    KEY_SOURCE_UNAVAILABLE = "KEY_SOURCE_UNAVAILABLE"
    TOKEN_REVOKED = "TOKEN_REVOKED"
    BACKEND_NOT_CONFIGURED = "BACKEND_NOT_CONFIGURED"
    INTERNAL = "INTERNAL"

    @property
    def grpc_code(self) -> grpc.StatusCode:
        """The gRPC status code this reason is answered with."""
        return _STATUS[self][0]

    @property
    def http_status(self) -> int:
        """The HTTP status this reason is answered with."""
        return _STATUS[self][1]

    @property
    def retryable(self) -> bool:
        """True when the same request may succeed if sent again later (docs/api.md, Retries)."""
        return self in _RETRY_DELAYS

    @property
    def default_retry_delay(self) -> float | None:
        """Seconds to wait before a retry when the error names none itself; None when a retry
        is advised only with a delay the error knows (a concurrency slot lapsing)."""
        return _RETRY_DELAYS.get(self)

    @property
    def default_field(self) -> str | None:
        """The request field a refusal with this reason blames when the raiser named none."""
        return _DEFAULT_FIELDS.get(self)

    @property
    def title(self) -> str:  # type: ignore[override]  # str.title() is a method; reasons shadow it
        """A short human title for problem+json."""
        return _TITLES.get(self, self.value.replace("_", " ").capitalize())


_UNAUTH = (grpc.StatusCode.UNAUTHENTICATED, 401)
_DENIED = (grpc.StatusCode.PERMISSION_DENIED, 403)
_EXHAUSTED = (grpc.StatusCode.RESOURCE_EXHAUSTED, 429)
_INVALID = (grpc.StatusCode.INVALID_ARGUMENT, 400)
_UNAVAILABLE = (grpc.StatusCode.UNAVAILABLE, 502)
_INTERNAL = (grpc.StatusCode.INTERNAL, 500)

_STATUS: dict[Reason, tuple[grpc.StatusCode, int]] = {
    Reason.TOKEN_MISSING: _UNAUTH,
    Reason.TOKEN_MALFORMED: _UNAUTH,
    Reason.TOKEN_SIGNATURE_INVALID: _UNAUTH,
    Reason.TOKEN_EXPIRED: _UNAUTH,
    Reason.TOKEN_NOT_YET_VALID: _UNAUTH,
    Reason.TOKEN_ISSUER_MISMATCH: _UNAUTH,
    Reason.TOKEN_AUDIENCE_MISMATCH: _UNAUTH,
    Reason.TOKEN_ALGORITHM_REJECTED: _UNAUTH,
    Reason.TOKEN_KEY_UNKNOWN: _UNAUTH,
    Reason.TOKEN_CLAIM_MISSING: _UNAUTH,
    Reason.IP_NOT_ALLOWED: _DENIED,
    Reason.DEVICE_NOT_ALLOWED: _DENIED,
    Reason.ORIGIN_NOT_ALLOWED: _DENIED,
    Reason.NOT_ENTITLED: _DENIED,
    Reason.NO_MATCHING_POLICY: _DENIED,
    Reason.TOKEN_REPLAYED: _DENIED,
    Reason.CONCURRENCY_LIMIT_EXCEEDED: _EXHAUSTED,
    Reason.RATE_LIMITED: _EXHAUSTED,
    Reason.CHALLENGE_INVALID: _INVALID,
    Reason.DRM_NOT_SUPPORTED: _INVALID,
    Reason.REQUEST_INVALID: _INVALID,
    Reason.CHALLENGE_TOO_LARGE: (grpc.StatusCode.INVALID_ARGUMENT, 413),
    Reason.UPSTREAM_REJECTED: (grpc.StatusCode.FAILED_PRECONDITION, 403),
    Reason.UPSTREAM_UNAVAILABLE: _UNAVAILABLE,
    Reason.UPSTREAM_BAD_RESPONSE: _UNAVAILABLE,
    Reason.UPSTREAM_TIMEOUT: (grpc.StatusCode.DEADLINE_EXCEEDED, 504),
    Reason.STATE_UNAVAILABLE: (grpc.StatusCode.UNAVAILABLE, 503),
    Reason.DEPENDENCY_UNAVAILABLE: (grpc.StatusCode.UNAVAILABLE, 503),
    Reason.KEY_SOURCE_UNAVAILABLE: (grpc.StatusCode.UNAVAILABLE, 503),
    Reason.TOKEN_REVOKED: _UNAUTH,
    Reason.BACKEND_NOT_CONFIGURED: _INTERNAL,
    Reason.INTERNAL: _INTERNAL,
}

_TITLES = {
    Reason.TOKEN_MISSING: "No access token",
    Reason.TOKEN_MALFORMED: "Malformed access token",
    Reason.TOKEN_SIGNATURE_INVALID: "Invalid token signature",
    Reason.TOKEN_EXPIRED: "Token expired",
    Reason.TOKEN_NOT_YET_VALID: "Token not yet valid",
    Reason.TOKEN_ISSUER_MISMATCH: "Token issuer not accepted",
    Reason.TOKEN_AUDIENCE_MISMATCH: "Token audience not accepted",
    Reason.TOKEN_ALGORITHM_REJECTED: "Token algorithm not accepted",
    Reason.TOKEN_KEY_UNKNOWN: "Token signing key unknown",
    Reason.TOKEN_CLAIM_MISSING: "Required token claim missing",
    Reason.IP_NOT_ALLOWED: "Client address not allowed",
    Reason.DEVICE_NOT_ALLOWED: "Device not allowed",
    Reason.ORIGIN_NOT_ALLOWED: "Web page origin not allowed",
    Reason.NOT_ENTITLED: "Not entitled to this content",
    Reason.NO_MATCHING_POLICY: "No policy matches this request",
    Reason.TOKEN_REPLAYED: "Token already used",
    Reason.CONCURRENCY_LIMIT_EXCEEDED: "Too many concurrent sessions",
    Reason.RATE_LIMITED: "Too many requests",
    Reason.CHALLENGE_INVALID: "Invalid license challenge",
    Reason.DRM_NOT_SUPPORTED: "DRM system not supported",
    Reason.REQUEST_INVALID: "Invalid request",
    Reason.CHALLENGE_TOO_LARGE: "License challenge too large",
    Reason.UPSTREAM_REJECTED: "The DRM vendor refused the license",
    Reason.UPSTREAM_UNAVAILABLE: "The DRM vendor is unavailable",
    Reason.UPSTREAM_BAD_RESPONSE: "The DRM vendor answered unreadably",
    Reason.UPSTREAM_TIMEOUT: "The DRM vendor did not answer in time",
    Reason.STATE_UNAVAILABLE: "Shared state unavailable",
    Reason.DEPENDENCY_UNAVAILABLE: "A service the proxy depends on is unavailable",
    Reason.KEY_SOURCE_UNAVAILABLE: "The token issuer's keys can't be fetched yet",
    Reason.TOKEN_REVOKED: "Token revoked",
    Reason.BACKEND_NOT_CONFIGURED: "No backend configured",
    Reason.INTERNAL: "Internal error",
}

#: The reasons a caller may retry, with the delay advised when the error carries none
#: (None: only with the error's own ``retry_after``). Every UNAVAILABLE reason is here,
#: since the recommended service config retries that code (docs/api.md).
_RETRY_DELAYS: dict[Reason, float | None] = {
    Reason.UPSTREAM_UNAVAILABLE: 1.0,
    Reason.UPSTREAM_BAD_RESPONSE: 1.0,
    Reason.UPSTREAM_TIMEOUT: 1.0,
    Reason.STATE_UNAVAILABLE: 1.0,
    Reason.DEPENDENCY_UNAVAILABLE: 1.0,
    Reason.KEY_SOURCE_UNAVAILABLE: 1.0,
    Reason.RATE_LIMITED: 1.0,
    Reason.CONCURRENCY_LIMIT_EXCEEDED: None,
}

_DEFAULT_FIELDS = {
    Reason.CHALLENGE_INVALID: "challenge",
    Reason.CHALLENGE_TOO_LARGE: "challenge",
    Reason.DRM_NOT_SUPPORTED: "drm_system",
}


class ProxyError(Exception):
    """A denial or failure with its reason code.

    Raise it from any hook to deny a request; the transports turn it into a
    gRPC status with ``google.rpc.ErrorInfo`` or an HTTP problem+json body.

    :param reason: the reason code.
    :param detail: a short sentence for the caller; it must never hold a
        token, a key or a vendor's raw stack trace.
    :param metadata: string facts for ``ErrorInfo.metadata`` and the
        problem+json body (for example a vendor's own error code).
    :param retry_after: seconds after which a retry may succeed (sent as
        ``Retry-After`` over HTTP and ``retry-after`` trailing metadata).
    :param field: the request field to blame, as a proto field path
        (``key_ids[2]``, ``client.ip_address``): a ``google.rpc.BadRequest``
        field violation over gRPC, an ``invalid_params`` member over HTTP.
    """

    def __init__(
        self,
        reason: Reason | str,
        detail: str = "",
        *,
        metadata: dict[str, str] | None = None,
        retry_after: float | None = None,
        field: str | None = None,
    ) -> None:
        self.reason = Reason(reason)
        self.detail = detail or self.reason.title
        self.metadata = dict(metadata or {})
        self.retry_after = retry_after
        self.field = field
        super().__init__(f"{self.reason.value}: {self.detail}")

    @property
    def retry_delay(self) -> float | None:
        """Seconds a caller should wait before sending the same request again, or None when
        a retry won't help (the reason is not retryable, or its delay is unknown)."""
        if not self.reason.retryable:
            return None
        if self.retry_after is not None:
            return self.retry_after
        return self.reason.default_retry_delay

    @property
    def blamed_field(self) -> str | None:
        """The request field at fault: the raiser's, else the reason's own (``challenge`` for
        an unreadable challenge); None when no single field is to blame."""
        return self.field or self.reason.default_field

    @property
    def grpc_code(self) -> grpc.StatusCode:
        """The gRPC status code to answer with."""
        return self.reason.grpc_code

    @property
    def http_status(self) -> int:
        """The HTTP status to answer with."""
        return self.reason.http_status


class ConfigError(Exception):
    """The configuration is invalid; ``errors`` holds one ``(key_path, message)`` per mistake."""

    def __init__(self, errors: list[tuple[str, str]]) -> None:
        self.errors = errors
        super().__init__("\n".join(f"{path}: {message}" for path, message in errors))
