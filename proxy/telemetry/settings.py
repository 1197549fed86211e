"""``[telemetry]``: OpenTelemetry traces, off unless enabled (the ``otel`` extra installs the SDK)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, field_validator

from proxy.fields import Duration, StrictModel
from proxy.secrets import Secret

#: Where an OpenTelemetry Collector listens by default, per OTLP protocol.
DEFAULT_ENDPOINTS = {
    "grpc": "http://127.0.0.1:4317",
    "http/protobuf": "http://127.0.0.1:4318/v1/traces",
}


class TelemetrySettings(StrictModel):
    """``[telemetry]``: a span per pipeline stage and per vendor call, exported over OTLP."""

    enabled: bool = False
    """Trace requests. Off by default; needs ``pip install 'drm-license-proxy[otel]'``."""
    exporter: Literal["otlp", "none"] = "otlp"
    """``otlp`` sends spans to ``endpoint``; ``none`` exports nothing but still reads
    callers' ``traceparent`` and sends one to the vendors."""
    protocol: Literal["grpc", "http/protobuf"] = "grpc"
    """The OTLP transport, as ``OTEL_EXPORTER_OTLP_PROTOCOL`` names them."""
    endpoint: str | None = None
    """The collector's URL (``http://`` for plaintext, ``https://`` for TLS); by default
    ``http://127.0.0.1:4317`` (grpc) or ``http://127.0.0.1:4318/v1/traces`` (http/protobuf)."""
    headers: dict[str, Secret] = Field(default_factory=dict)
    """Headers sent with every export (an API key, say), values by reference."""
    timeout: Duration = 10.0
    """How long one export may take; also bounds the flush at shutdown."""
    service_name: str = Field(default="license-proxy", min_length=1)
    """The ``service.name`` resource attribute of every span."""
    sample_ratio: float = Field(default=1.0, ge=0.0, le=1.0)
    """Share of new traces recorded; a caller's sampled ``traceparent`` is always followed."""

    @field_validator("endpoint")
    @classmethod
    def _url(cls, value: str | None) -> str | None:
        if value is not None and not value.startswith(("http://", "https://")):
            raise ValueError("must be an http:// or https:// URL")
        return value

    @property
    def export_endpoint(self) -> str:
        """The endpoint spans go to (the configured one, else the protocol's default)."""
        return self.endpoint or DEFAULT_ENDPOINTS[self.protocol]
