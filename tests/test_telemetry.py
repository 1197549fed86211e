"""OpenTelemetry traces: a span per stage and per vendor call, the caller's trace continued,
``traceparent`` sent to the vendor, spans exported over OTLP (HTTP and gRPC)."""

from __future__ import annotations

import sys
import uuid
from collections.abc import AsyncIterator
from typing import Any

import grpc
import pytest
from aiohttp import web
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2, trace_service_pb2_grpc
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode

from licenseproxy.v1 import license_proxy_pb2 as pb
from proxy import ConfigError
from proxy.builder import build_pipeline
from proxy.stages import STAGES
from proxy.testing import proxy_config
from proxy.testing.emulator import serving, start_emulator
from tests.conftest import clearkey_request
from tests.observability_support import AcmeVendor, acme_app, acme_config

KID = uuid.UUID("4060a865-8878-4267-9cbf-91ae5bae1e72").bytes
CALLER_TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
CALLER_SPAN = "00f067aa0ba902b7"
CALLER_TRACEPARENT = f"00-{CALLER_TRACE}-{CALLER_SPAN}-01"


def traced(config: dict[str, Any], **telemetry: Any) -> dict[str, Any]:
    config["telemetry"] = {"enabled": True, "exporter": "none", **telemetry}
    return config


def in_memory(proxy: Any) -> InMemorySpanExporter:
    exporter = InMemorySpanExporter()
    proxy.pipeline.telemetry.add_span_processor(SimpleSpanProcessor(exporter))
    return exporter


def by_name(spans: tuple[ReadableSpan, ...]) -> dict[str, ReadableSpan]:
    named = {span.name: span for span in spans}
    assert len(named) == len(spans), [s.name for s in spans]
    return named


def check_one_trace(spans: tuple[ReadableSpan, ...], trace_id: int | None) -> dict[str, Any]:
    """One request's spans: the request, a child per stage, the vendor call under ``issue``."""
    named = by_name(spans)
    root = named["AcquireLicense"]
    assert root.kind is SpanKind.SERVER
    if trace_id is not None:
        assert root.context.trace_id == trace_id
        assert root.parent is not None and root.parent.span_id == int(CALLER_SPAN, 16)
    assert {span.context.trace_id for span in spans} == {root.context.trace_id}
    for stage in STAGES:
        assert named[stage].parent.span_id == root.context.span_id, stage
    upstream = named["upstream acme"]
    assert upstream.kind is SpanKind.CLIENT
    assert upstream.parent.span_id == named["issue"].context.span_id
    assert upstream.attributes["http.response.status_code"] == 200
    assert root.attributes["license_proxy.backend"] == "acme"
    assert root.attributes["license_proxy.outcome"] == "ok"
    return named


@pytest.fixture
async def acme() -> AsyncIterator[Any]:
    async with serving(acme_app()) as emulator:
        yield emulator


async def test_an_http_callers_trace_reaches_every_stage_and_the_vendor(
    proxy_factory, http, dev_token, acme
):
    proxy = await proxy_factory(
        traced(acme_config(proxy_config(), acme.url)), plugins=[AcmeVendor()]
    )
    exporter = in_memory(proxy)
    token = dev_token({"vendor": "acme"})
    async with http.post(
        f"{proxy.http_url}/v1/licenses/clearkey",
        data=clearkey_request(KID),
        headers={"Authorization": f"Bearer {token}", "traceparent": CALLER_TRACEPARENT},
    ) as response:
        assert response.status == 200
        request_id = response.headers["X-Request-Id"]
    named = check_one_trace(exporter.get_finished_spans(), int(CALLER_TRACE, 16))
    upstream = named["upstream acme"]
    sent = acme.state.last.headers["traceparent"]
    assert sent == f"00-{CALLER_TRACE}-{upstream.context.span_id:016x}-01"
    root = named["AcquireLicense"]
    assert root.attributes["license_proxy.request_id"] == request_id
    assert root.attributes["license_proxy.transport"] == "http"
    assert root.attributes["license_proxy.drm"] == "clearkey"
    everything = repr([dict(s.attributes or {}) for s in exporter.get_finished_spans()])
    assert token not in everything and "dev-user" not in everything  # no token, no subject


async def test_a_grpc_callers_trace_comes_in_metadata(proxy_factory, dev_token, acme):
    proxy = await proxy_factory(
        traced(acme_config(proxy_config(), acme.url)), plugins=[AcmeVendor()]
    )
    exporter = in_memory(proxy)
    await proxy.stub().AcquireLicense(
        pb.AcquireLicenseRequest(
            drm_system=pb.DRM_SYSTEM_CLEARKEY,
            challenge=clearkey_request(KID),
            token=dev_token({"vendor": "acme"}),
        ),
        metadata=(("traceparent", CALLER_TRACEPARENT),),
    )
    check_one_trace(exporter.get_finished_spans(), int(CALLER_TRACE, 16))
    assert acme.state.last.headers["traceparent"].startswith(f"00-{CALLER_TRACE}-")


async def test_without_a_caller_trace_a_new_one_starts_and_still_reaches_the_vendor(
    proxy_factory, http, dev_token, acme
):
    proxy = await proxy_factory(
        traced(acme_config(proxy_config(), acme.url)), plugins=[AcmeVendor()]
    )
    exporter = in_memory(proxy)
    async with http.post(
        f"{proxy.http_url}/v1/licenses/clearkey",
        data=clearkey_request(KID),
        headers={"Authorization": f"Bearer {dev_token({'vendor': 'acme'})}"},
    ) as response:
        assert response.status == 200
    named = check_one_trace(exporter.get_finished_spans(), None)
    root = named["AcquireLicense"]
    assert root.parent is None
    assert f"{root.context.trace_id:032x}" in acme.state.last.headers["traceparent"]


async def test_a_refusal_marks_its_stage_and_the_request_failed(proxy_factory, http):
    proxy = await proxy_factory(traced(proxy_config()))
    exporter = in_memory(proxy)
    async with http.post(
        f"{proxy.http_url}/v1/licenses/clearkey", data=clearkey_request(KID)
    ) as response:
        assert response.status == 401
    named = by_name(exporter.get_finished_spans())
    assert set(named) == {"AcquireLicense", "inspect", "authenticate"}
    assert named["authenticate"].status.status_code is StatusCode.ERROR
    assert named["inspect"].status.status_code is StatusCode.UNSET
    root = named["AcquireLicense"]
    assert root.status.status_code is StatusCode.ERROR
    assert root.attributes["license_proxy.reason"] == "TOKEN_MISSING"
    assert root.attributes["license_proxy.outcome"] == "denied"


async def test_with_telemetry_off_no_span_and_no_traceparent(proxy_factory, http, dev_token, acme):
    proxy = await proxy_factory(acme_config(proxy_config(), acme.url), plugins=[AcmeVendor()])
    assert proxy.pipeline.telemetry is None
    async with http.post(
        f"{proxy.http_url}/v1/licenses/clearkey",
        data=clearkey_request(KID),
        headers={
            "Authorization": f"Bearer {dev_token({'vendor': 'acme'})}",
            "traceparent": CALLER_TRACEPARENT,
        },
    ) as response:
        assert response.status == 200
    assert "traceparent" not in acme.state.last.headers


# -- export over OTLP to a receiver on loopback --------------------------------------------


class OtlpHttpReceiver:
    """An OTLP/HTTP endpoint (``POST /v1/traces``, protobuf) that keeps what it receives."""

    def __init__(self) -> None:
        self.requests: list[trace_service_pb2.ExportTraceServiceRequest] = []
        self.app = web.Application()
        self.app.router.add_post("/v1/traces", self._traces)

    async def _traces(self, request: web.Request) -> web.Response:
        message = trace_service_pb2.ExportTraceServiceRequest.FromString(await request.read())
        self.requests.append(message)
        answer = trace_service_pb2.ExportTraceServiceResponse().SerializeToString()
        return web.Response(body=answer, content_type="application/x-protobuf")


class OtlpGrpcReceiver(trace_service_pb2_grpc.TraceServiceServicer):
    """An OTLP/gRPC ``TraceService`` that keeps what it receives."""

    def __init__(self) -> None:
        self.requests: list[trace_service_pb2.ExportTraceServiceRequest] = []

    async def Export(self, request: Any, context: Any) -> Any:
        self.requests.append(request)
        return trace_service_pb2.ExportTraceServiceResponse()


def exported(requests: list[Any]) -> tuple[set[str], set[str]]:
    """Span names and service names of everything a receiver got."""
    names, services = set(), set()
    for message in requests:
        for resource_spans in message.resource_spans:
            for attribute in resource_spans.resource.attributes:
                if attribute.key == "service.name":
                    services.add(attribute.value.string_value)
            for scope_spans in resource_spans.scope_spans:
                names.update(span.name for span in scope_spans.spans)
    return names, services


@pytest.mark.parametrize("protocol", ["http/protobuf", "grpc"])
async def test_spans_are_exported_over_otlp(proxy_factory, dev_token, protocol):
    if protocol == "grpc":
        receiver: Any = OtlpGrpcReceiver()
        server = grpc.aio.server()
        trace_service_pb2_grpc.add_TraceServiceServicer_to_server(receiver, server)
        port = server.add_insecure_port("127.0.0.1:0")
        await server.start()
        endpoint = f"http://127.0.0.1:{port}"
    else:
        receiver = OtlpHttpReceiver()
        http_server = await start_emulator(receiver.app)
        endpoint = f"{http_server.url}/v1/traces"
    try:
        config = traced(
            proxy_config(),
            exporter="otlp",
            protocol=protocol,
            endpoint=endpoint,
            service_name="proxy-under-test",
        )
        proxy = await proxy_factory(config)
        await proxy.stub().AcquireLicense(
            pb.AcquireLicenseRequest(
                drm_system=pb.DRM_SYSTEM_CLEARKEY,
                challenge=clearkey_request(KID),
                token=dev_token(),
            )
        )
        await proxy.stop()  # the pipeline's stop flushes the exporter
        names, services = exported(receiver.requests)
        assert {"AcquireLicense", *STAGES} <= names
        assert services == {"proxy-under-test"}
    finally:
        if protocol == "grpc":
            await server.stop(None)
        else:
            await http_server.stop()


@pytest.mark.parametrize(
    ("telemetry", "path"),
    [
        ({"endpoint": "collector:4317"}, "telemetry.endpoint"),
        ({"protocol": "thrift"}, "telemetry.protocol"),
        ({"sample_ratio": 2}, "telemetry.sample_ratio"),
        ({"exporter": "jaeger"}, "telemetry.exporter"),
    ],
)
def test_bad_telemetry_config_fails_at_start_with_the_key_path(telemetry, path):
    with pytest.raises(ConfigError) as failed:
        build_pipeline(proxy_config({"telemetry": {"enabled": True, **telemetry}}))
    assert path in [p for p, _ in failed.value.errors]


def test_enabled_without_the_sdk_names_the_extra(monkeypatch):
    monkeypatch.delitem(sys.modules, "proxy.telemetry.tracing", raising=False)
    monkeypatch.setitem(sys.modules, "opentelemetry.sdk.trace", None)
    with pytest.raises(ConfigError) as failed:
        build_pipeline(proxy_config({"telemetry": {"enabled": True}}))
    [(path, message)] = failed.value.errors
    assert path == "telemetry.enabled"
    assert "drm-license-proxy[otel]" in message


def test_telemetry_is_off_by_default():
    assert build_pipeline(proxy_config()).telemetry is None
