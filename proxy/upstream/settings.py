"""``[backends.NAME]`` settings of a backend reached over HTTP, and its circuit breaker's."""

from __future__ import annotations

from typing import Any

from pydantic import Field

from proxy.adapters.settings import BackendSettings
from proxy.fields import Duration, StrictModel

#: The request header that carries the proxy's request id to the vendor, unless configured.
CORRELATION_HEADER = "X-Request-Id"


class CircuitSettings(StrictModel):
    """``[backends.NAME.circuit_breaker]``: when to stop calling a failing backend."""

    enabled: bool = True
    failure_threshold: int = Field(default=5, ge=1)
    """Consecutive outages (unavailable, timeout, unreadable answer) that open the circuit."""
    reset_timeout: Duration = 30.0
    """Seconds the circuit stays open before one probe request is let through."""


class UpstreamSettings(BackendSettings):
    """Settings of a backend reached over HTTP; every translating adapter's settings extend it."""

    retries: int = Field(default=1, ge=0, le=5)
    """Extra attempts, only after a failed connect or a 503 with ``Retry-After``."""
    retry_after_max: Duration = 2.0
    """The longest ``Retry-After`` honoured by waiting; a longer one is answered at once."""
    connect_retry_delay: Duration = 0.05
    """Pause before retrying a connection that could not be made."""
    circuit_breaker: CircuitSettings = CircuitSettings()
    service_certificate_cache: Duration = 3600.0
    """How long a Widevine service certificate fetched from this backend is reused (0: never);
    the FairPlay application certificate from ``fairplay_certificate_url`` too."""
    fairplay_certificate_url: str | None = Field(default=None, pattern=r"^https?://[^\s/]+")
    """Where this vendor serves the FairPlay application certificate (DER, PEM or base64),
    fetched with a GET for ``GET /v1/certificates/fairplay`` when the config gives none."""
    correlation_header: str = CORRELATION_HEADER
    """The request header that carries the proxy's request id to the vendor."""


_DEFAULTS = UpstreamSettings(vendor="-")


def setting(settings: BackendSettings, name: str) -> Any:
    """A backend's upstream setting, or its default for adapters that extend only BackendSettings."""
    return getattr(settings, name, getattr(_DEFAULTS, name))
