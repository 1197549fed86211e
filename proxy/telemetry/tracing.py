"""The OpenTelemetry SDK behind :class:`proxy.telemetry.Telemetry` (imported only when enabled).

Each pipeline gets its own ``TracerProvider`` (a reload may change the
exporter), never the process-global one, so in-house code that sets a global
provider is left alone. Spans:

- the request (``AcquireLicense`` / ``InspectChallenge``, kind SERVER), a child
  of the caller's ``traceparent`` when one came, with the request id,
  transport, DRM, request type, policy, backend, outcome and reason code;
- one span per pipeline stage (``inspect``, ``authenticate``, ... ``issue``),
  current while the stage runs, so a plugin's own spans nest under it;
- one span per vendor exchange (``upstream BACKEND``, kind CLIENT), whose
  context the vendor receives as ``traceparent``.

No span carries a token, a key, a challenge, a license or the subject.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import SpanProcessor, TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter
from opentelemetry.sdk.trace.sampling import ParentBased, TraceIdRatioBased
from opentelemetry.trace import SpanKind, Status, StatusCode
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

from proxy.stages import StageClock
from proxy.telemetry.settings import TelemetrySettings

if TYPE_CHECKING:
    from proxy.errors import ProxyError
    from proxy.model import LicenseRequest, RequestContext

#: W3C Trace Context only (``traceparent``/``tracestate``): whatever global propagator the
#: process may have set, callers and vendors speak this one.
PROPAGATOR = TraceContextTextMapPropagator()
INSTRUMENTATION = "drm-license-proxy"


def _exporter(settings: TelemetrySettings) -> SpanExporter | None:
    if settings.exporter == "none":
        return None
    headers = {name: secret.text() for name, secret in settings.headers.items()}
    endpoint = settings.export_endpoint
    if settings.protocol == "grpc":
        from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import (
            OTLPSpanExporter as GrpcExporter,
        )

        return GrpcExporter(
            endpoint=endpoint,
            insecure=endpoint.startswith("http://"),
            headers=headers or None,
            timeout=settings.timeout,
        )
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import (
        OTLPSpanExporter as HttpExporter,
    )

    return HttpExporter(endpoint=endpoint, headers=headers or None, timeout=settings.timeout)


class OtelTelemetry:
    """Tracing with one SDK ``TracerProvider`` per pipeline.

    :param provider: the provider spans are made and exported with.
    """

    def __init__(self, provider: TracerProvider) -> None:
        self.provider = provider
        self.tracer = provider.get_tracer(INSTRUMENTATION)

    @classmethod
    def from_settings(cls, settings: TelemetrySettings) -> OtelTelemetry:
        """A provider sampling and exporting as ``[telemetry]`` says."""
        provider = TracerProvider(
            sampler=ParentBased(TraceIdRatioBased(settings.sample_ratio)),
            resource=Resource.create({"service.name": settings.service_name}),
            shutdown_on_exit=False,
        )
        exporter = _exporter(settings)
        if exporter is not None:
            provider.add_span_processor(
                BatchSpanProcessor(exporter, export_timeout_millis=settings.timeout * 1000)
            )
        return cls(provider)

    def add_span_processor(self, processor: SpanProcessor) -> None:
        """Send spans to one more processor as well (tests add an in-memory exporter)."""
        self.provider.add_span_processor(processor)

    def stage_clock(self, request: LicenseRequest, operation: str) -> StageClock:
        """Open the request's span and hand back the clock that opens one per stage."""
        return TracedStages(self.tracer, request, operation)

    def upstream(self, backend: str, method: str, url: str) -> UpstreamSpan:
        """Open the span of one vendor exchange (a child of the current stage span)."""
        return UpstreamSpan(self.tracer, backend, method, url)

    async def shutdown(self) -> None:
        """Flush and stop the exporters in a worker thread (they block on the network)."""
        await asyncio.to_thread(self.provider.shutdown)


class TracedStages(StageClock):
    """A :class:`StageClock` that also keeps the request's span and one span per stage."""

    __slots__ = ("_error", "_root", "_root_token", "_span", "_span_token", "_tracer")

    def __init__(self, tracer: trace.Tracer, request: LicenseRequest, operation: str) -> None:
        super().__init__()
        self._tracer = tracer
        self._root = tracer.start_span(
            operation,
            context=PROPAGATOR.extract(request.headers),
            kind=SpanKind.SERVER,
            attributes={
                "license_proxy.request_id": request.request_id,
                "license_proxy.transport": request.transport,
            },
        )
        self._root_token: Any = None
        self._span: trace.Span | None = None
        self._span_token: Any = None
        self._error: ProxyError | None = None

    def enter(self, stage: str) -> None:
        """End the previous stage's span and open ``stage``'s, current until the next."""
        StageClock.enter(self, stage)
        self._end_stage()
        if self._root_token is None:
            # Attached here, in the request's own task, and detached in close(): the
            # contextvars tokens pair up last in, first out.
            self._root_token = otel_context.attach(trace.set_span_in_context(self._root))
        self._span = self._tracer.start_span(stage)
        self._span_token = otel_context.attach(trace.set_span_in_context(self._span))

    def stop(self, error: ProxyError | None = None) -> None:
        """The answer is known: the last stage's span ends (marked failed on ``error``)."""
        if self.stopped is not None:
            return
        StageClock.stop(self, error)
        if error is not None:
            self._error = error
            if self._span is not None:
                self._span.set_status(Status(StatusCode.ERROR, error.reason.value))
        self._end_stage()

    def close(self, ctx: RequestContext) -> None:
        """End the request's span with what the request came to."""
        self.stop()
        root = self._root
        if root.is_recording():
            root.set_attributes(_request_attributes(ctx, self._error))
            if self._error is not None:
                root.set_status(Status(StatusCode.ERROR, self._error.reason.value))
        if self._root_token is not None:
            otel_context.detach(self._root_token)
            self._root_token = None
        root.end()

    def _end_stage(self) -> None:
        if self._span is not None:
            otel_context.detach(self._span_token)
            self._span.end()
            self._span = None


def _request_attributes(ctx: RequestContext, error: ProxyError | None) -> dict[str, Any]:
    attributes: dict[str, Any] = {}
    if ctx.challenge is not None:
        attributes["license_proxy.drm"] = ctx.challenge.drm_system.value
        attributes["license_proxy.request_type"] = ctx.challenge.request_type.value
    if ctx.policy is not None:
        attributes["license_proxy.policy"] = ctx.policy.name
    if ctx.backend is not None:
        attributes["license_proxy.backend"] = ctx.backend
    if ctx.cancelled:
        attributes["license_proxy.outcome"] = "cancelled"
    elif error is not None:
        attributes["license_proxy.outcome"] = "denied"
    else:
        attributes["license_proxy.outcome"] = "dry_run" if ctx.request.dry_run else "ok"
    if error is not None:
        attributes["license_proxy.reason"] = error.reason.value
    return attributes


class UpstreamSpan:
    """The span of one vendor exchange; ``headers`` carry its context to the vendor."""

    __slots__ = ("headers", "span")

    def __init__(self, tracer: trace.Tracer, backend: str, method: str, url: str) -> None:
        parts = urlsplit(url)
        attributes: dict[str, Any] = {
            "http.request.method": method,
            "server.address": parts.hostname or "",
            # The query is left out: some vendors take their token there.
            "url.full": f"{parts.scheme}://{parts.netloc}{parts.path}",
            "license_proxy.backend": backend,
        }
        if parts.port is not None:
            attributes["server.port"] = parts.port
        self.span = tracer.start_span(
            f"upstream {backend}", kind=SpanKind.CLIENT, attributes=attributes
        )
        carrier: dict[str, str] = {}
        PROPAGATOR.inject(carrier, context=trace.set_span_in_context(self.span))
        self.headers: Mapping[str, str] = carrier

    def response(self, status: int) -> None:
        """The vendor answered with HTTP ``status``."""
        self.span.set_attribute("http.response.status_code", status)

    def finish(self, outcome: str) -> None:
        """End the span: ``ok``, or the reason code the exchange ended with."""
        self.span.set_attribute("license_proxy.outcome", outcome)
        if outcome != "ok":
            self.span.set_status(Status(StatusCode.ERROR, outcome))
        self.span.end()


__all__ = ["PROPAGATOR", "OtelTelemetry", "TracedStages", "UpstreamSpan"]
