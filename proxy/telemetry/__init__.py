"""OpenTelemetry traces of license requests: optional, and free when off.

With ``[telemetry] enabled = true`` each license request is one trace: a span
for the request (a child of the caller's ``traceparent``, read from HTTP
headers or gRPC metadata), one per pipeline stage and one per vendor call,
whose context goes to the vendor as ``traceparent``. Spans leave over OTLP.

The SDK is an optional extra (``drm-license-proxy[otel]``) and is imported only
when telemetry is on; when it is off the pipeline keeps a plain
:class:`~proxy.stages.StageClock` and the upstream client sends no extra
header, so the hot path pays nothing for it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol

from proxy.telemetry.settings import DEFAULT_ENDPOINTS, TelemetrySettings
from proxy.upstream.tracing import UpstreamTrace, UpstreamTracer

if TYPE_CHECKING:
    from proxy.model import LicenseRequest
    from proxy.stages import StageClock

#: What to install when ``[telemetry] enabled`` but the SDK is missing.
EXTRA_HINT = "pip install 'drm-license-proxy[otel]'"


class Telemetry(UpstreamTracer, Protocol):
    """Tracing as the pipeline and the upstream client use it."""

    def stage_clock(self, request: LicenseRequest, operation: str) -> StageClock:
        """A stage clock that opens the request's span and one span per stage."""

    async def shutdown(self) -> None:
        """Flush what is buffered (bounded by ``timeout``) and stop exporting."""


def start_telemetry(settings: TelemetrySettings) -> Telemetry:
    """The tracer for ``settings`` (enabled); ImportError names the extra when the SDK is missing."""
    try:
        from proxy.telemetry.tracing import OtelTelemetry
    except ImportError as exc:
        raise ImportError(f"OpenTelemetry is not installed ({exc.name}); {EXTRA_HINT}") from None
    return OtelTelemetry.from_settings(settings)


__all__ = [
    "DEFAULT_ENDPOINTS",
    "EXTRA_HINT",
    "Telemetry",
    "TelemetrySettings",
    "UpstreamTrace",
    "start_telemetry",
]
