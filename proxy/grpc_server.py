"""The gRPC transport: ``LicenseProxyService`` on ``grpc.aio``, with health and reflection.

Handlers translate and call the pipeline, and raise. One wrapper
(:class:`CallWrapper`), put around each of the service's methods once when the
server is built, learns who is calling before a handler runs (peer, trusted or
not, request id) and turns whatever a handler raises into a status: a
:class:`ProxyError` into a ``google.rpc.Status`` carrying ``ErrorInfo``,
anything else into INTERNAL. No handler aborts by itself.

The wrapper is not a ``grpc.aio`` interceptor: an interceptor runs once more per
call (a coroutine that finds the handler again), and every call pays for it.
The request id travels in the trailers of every answer, a success too: sending
initial metadata on its own is one more write to the transport per call.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable, Iterable
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any, cast

import grpc
from google.protobuf import any_pb2
from google.rpc import error_details_pb2, status_pb2
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection

from licenseproxy.v1 import license_proxy_pb2 as pb
from licenseproxy.v1 import license_proxy_pb2_grpc as pb_grpc
from proxy import certificates, convert, grpc_access
from proxy.clientaddr import grpc_peer_ip, resolve_client_ip
from proxy.config import ServerConfig
from proxy.errors import ProxyError, Reason
from proxy.grpc_limits import check_metadata, message_ceiling, metadata_ceiling
from proxy.http_problems import retry_after_seconds
from proxy.listeners import listen_error
from proxy.logs import accept_request_id, request_id_var
from proxy.model import ClientInfo, LicenseRequest
from proxy.pipeline import Pipeline
from proxy.shutdown import ANSWER_MARGIN, Drain
from proxy.tls import grpc_identities
from proxy.tls_listener import ListenerTls

log = logging.getLogger("proxy.grpc")

ERROR_DOMAIN = "licenseproxy"
#: The metadata key of the request id: in the initial metadata of every success, and in
#: the trailers of every error.
REQUEST_ID_METADATA = "x-request-id"
SERVICE_NAME = pb.DESCRIPTOR.services_by_name["LicenseProxyService"].full_name


@dataclass(frozen=True)
class _Status(grpc.Status):
    code: grpc.StatusCode
    details: str
    trailing_metadata: tuple[tuple[str, str | bytes], ...]


def _packed(message: Any) -> any_pb2.Any:
    packed = any_pb2.Any()
    packed.Pack(message)
    return packed


def error_details(error: ProxyError, request_id: str) -> list[any_pb2.Any]:
    """The ``google.rpc.Status`` details of ``error`` (AIP-193): ``ErrorInfo`` always,
    ``RetryInfo`` when a retry may succeed, ``BadRequest`` when a field of an
    INVALID_ARGUMENT request is to blame."""
    details = [
        _packed(
            error_details_pb2.ErrorInfo(
                reason=error.reason.value,
                domain=ERROR_DOMAIN,
                metadata={**error.metadata, "request_id": request_id},
            )
        )
    ]
    delay = error.retry_delay
    if delay is not None:
        retry = error_details_pb2.RetryInfo()
        retry.retry_delay.FromNanoseconds(round(delay * 1e9))
        details.append(_packed(retry))
    field = error.blamed_field
    if field is not None and error.grpc_code is grpc.StatusCode.INVALID_ARGUMENT:
        violation = error_details_pb2.BadRequest.FieldViolation(
            field=field, description=error.detail
        )
        details.append(_packed(error_details_pb2.BadRequest(field_violations=[violation])))
    return details


def error_status(error: ProxyError, request_id: str) -> grpc.Status:
    """The gRPC status for ``error``: code, message, and ``google.rpc.Status`` with its
    details; the request id, and for a retryable error its delay, in trailing metadata."""
    status = status_pb2.Status(
        code=error.grpc_code.value[0],
        message=error.detail,
        details=error_details(error, request_id),
    )
    trailers: list[tuple[str, str | bytes]] = [
        ("grpc-status-details-bin", status.SerializeToString()),
        (REQUEST_ID_METADATA, request_id),
    ]
    delay = error.retry_delay
    if delay is not None:
        trailers.append(("retry-after", retry_after_seconds(delay)))
        # gRPC's own retry policy (docs/api.md's service config) waits this long.
        trailers.append(("grpc-retry-pushback-ms", str(max(1, round(delay * 1000)))))
    elif error.retry_after is not None:
        trailers.append(("retry-after", retry_after_seconds(error.retry_after)))
    return _Status(error.grpc_code, error.detail, tuple(trailers))


def _internal_status(method: str, request_id: str) -> grpc.Status:
    """INTERNAL for an exception that is no :class:`ProxyError` (a bug): logged here, once,
    with its traceback; the caller gets the error model and its request id, never the
    exception's text (grpc.aio would send it as the status message)."""
    log.exception("unexpected error serving %s", method)
    error = ProxyError(Reason.INTERNAL, "the server failed to handle the request")
    return error_status(error, request_id)


def _metadata(pairs: Iterable[tuple[str, str | bytes]]) -> dict[str, str]:
    return {key.lower(): value for key, value in pairs if isinstance(value, str)}


def parse_request(deserialize: Callable[[bytes], Any], raw: bytes, method: str) -> Any:
    """The request message from its wire bytes; bytes that are no such message (random
    bytes, a truncated varint, invalid UTF-8 in a string field) are REQUEST_INVALID,
    logged as one warning without the input."""
    try:
        return deserialize(raw)
    except Exception as exc:
        log.warning(
            "%s: the request is not a valid protobuf message (%s)", method, type(exc).__name__
        )
        raise ProxyError(
            Reason.REQUEST_INVALID, f"the request is not a valid {method} request message"
        ) from None


@dataclass(frozen=True, slots=True)
class Caller:
    """Who is calling, as the interceptor found it before the handler ran."""

    pipeline: Pipeline
    headers: dict[str, str]
    peer: str | None
    client_ip: str | None
    trusted: bool
    request_id: str


_caller: ContextVar[Caller] = ContextVar("grpc_caller")

Behavior = Callable[[Any, grpc.aio.ServicerContext], Awaitable[Any]]


class _HandlerCollector:
    """Stands in for a server to the generated ``add_..._to_server``, keeping its handlers."""

    def __init__(self) -> None:
        self.handlers: dict[str, grpc.RpcMethodHandler] = {}

    def add_generic_rpc_handlers(self, handlers: Any) -> None:
        """Not needed: the same handlers arrive by name below."""

    def add_registered_method_handlers(self, service: str, handlers: Any) -> None:
        """The method handlers by method name."""
        self.handlers.update(handlers)


def _declared_handlers(servicer: Any) -> dict[str, grpc.RpcMethodHandler]:
    """``servicer``'s method handlers as the generated code declares them, with their
    (de)serializers."""
    collector = _HandlerCollector()
    pb_grpc.add_LicenseProxyServiceServicer_to_server(servicer, collector)
    return collector.handlers


class CallWrapper:
    """Wraps each unary method of the proxy's service: caller facts in, statuses out."""

    def __init__(self, pipeline: Callable[[], Pipeline], drain: Drain | None = None) -> None:
        self._pipeline = pipeline
        self._drain = drain or Drain()
        self._calls: set[asyncio.Task[Any]] = set()

    def add_to(self, server: grpc.aio.Server, servicer: LicenseProxyServicer) -> None:
        """Register ``servicer``'s methods on ``server``, each wrapped once."""
        wrapped: dict[str, grpc.RpcMethodHandler[Any, Any]] = {
            name: grpc.unary_unary_rpc_method_handler(
                # The request is parsed in the wrapper, not by grpc: a message that does
                # not parse is then REQUEST_INVALID with ErrorInfo, not UNKNOWN with a
                # traceback.
                self._wrap(name, cast(Behavior, handler.unary_unary), handler.request_deserializer),
                request_deserializer=None,
                response_serializer=handler.response_serializer,
            )
            for name, handler in _declared_handlers(servicer).items()
        }
        server.add_generic_rpc_handlers(
            (grpc.method_handlers_generic_handler(SERVICE_NAME, wrapped),)
        )
        server.add_registered_method_handlers(SERVICE_NAME, wrapped)

    async def settled(self) -> None:
        """Wait for the calls still finishing: grpc counts a call done once its status is
        sent, before the handler's own ending (its access line) has run."""
        if self._calls:
            await asyncio.wait(set(self._calls))

    def _wrap(
        self, name: str, behavior: Behavior, deserialize: Callable[[bytes], Any] | None
    ) -> Behavior:
        async def call(request: Any, context: grpc.aio.ServicerContext) -> Any:
            task = asyncio.current_task()
            if task is not None:
                self._calls.add(task)
            pipeline = self._pipeline()
            server = pipeline.server
            pairs = context.invocation_metadata() or ()
            headers = _metadata(pairs)
            peer = grpc_peer_ip(context.peer())
            # A caller whose verified client certificate names a trusted identity has the
            # powers of a trusted proxy's address (the auth context is read only then).
            known = bool(server.trusted_callers) and not server.trusted_caller_set.isdisjoint(
                grpc_identities(context.auth_context())
            )
            client_ip, trusted = resolve_client_ip(peer, headers, server, trusted_caller=known)
            # A trusted proxy's request id is believed even when it forwards an outside
            # client. Metadata keys are lower case, and so is request_id_header once validated.
            request_id = accept_request_id(
                headers.get(server.request_id_header), known or server.is_trusted(peer)
            )
            caller = _caller.set(Caller(pipeline, headers, peer, client_ip, trusted, request_id))
            token = request_id_var.set(request_id)
            started = time.perf_counter()
            status, reason = "CANCELLED", None  # unless the call ends otherwise
            try:
                async with self._drain.request():
                    check_metadata(pairs)
                    if deserialize is not None:
                        request = parse_request(deserialize, request, name)
                    response = await behavior(request, context)
                # In the trailers, as an error's: no initial metadata is sent apart from the
                # message (one write less per call), and an error stays a trailers-only
                # answer that gRPC's retry policy can retry.
                context.set_trailing_metadata(((REQUEST_ID_METADATA, request_id),))
                status = "OK"
                return response
            except ProxyError as error:
                status, reason = error.grpc_code.name, error.reason.value
                await context.abort_with_status(error_status(error, request_id))
                raise  # abort_with_status raises; this line is never reached
            except Exception:
                status, reason = "INTERNAL", Reason.INTERNAL.value
                await context.abort_with_status(_internal_status(name, request_id))
                raise
            finally:
                if pipeline.log.access:
                    grpc_access.log_call(name, peer, status, reason, started)
                request_id_var.reset(token)
                _caller.reset(caller)
                if task is not None:
                    self._calls.discard(task)

        return call


class LicenseProxyServicer(pb_grpc.LicenseProxyServiceServicer):
    """``licenseproxy.v1.LicenseProxyService`` over the current pipeline.

    Handlers raise :class:`ProxyError`; :class:`CallWrapper` answers it.
    """

    async def AcquireLicense(
        self, request: pb.AcquireLicenseRequest, context: grpc.aio.ServicerContext
    ) -> pb.AcquireLicenseResponse:
        """Run the pipeline for one license request."""
        caller = _caller.get()
        model = convert.acquire_request(
            request,
            transport="grpc",
            request_id=caller.request_id,
            headers=caller.headers,
            peer=caller.peer,
            resolved_ip=caller.client_ip,
            trusted=caller.trusted,
            timeout=context.time_remaining(),
        )
        result = await caller.pipeline.acquire(model)
        return convert.license_response(result)

    async def InspectChallenge(
        self, request: pb.InspectChallengeRequest, context: grpc.aio.ServicerContext
    ) -> pb.InspectChallengeResponse:
        """Parse a challenge and report what it holds."""
        caller = _caller.get()
        model = convert.inspect_request(
            request,
            transport="grpc",
            request_id=caller.request_id,
            headers=caller.headers,
            peer=caller.peer,
            resolved_ip=caller.client_ip,
            trusted=caller.trusted,
        )
        info = await caller.pipeline.inspect_only(model)
        return convert.inspect_response(info, caller.request_id)

    async def GetCertificate(
        self, request: pb.GetCertificateRequest, context: grpc.aio.ServicerContext
    ) -> pb.GetCertificateResponse:
        """The Widevine service certificate or the FairPlay application certificate."""
        caller = _caller.get()
        remaining = context.time_remaining()
        model = LicenseRequest(
            challenge=b"",
            client=ClientInfo(
                ip_address=caller.client_ip, peer=caller.peer, trusted=caller.trusted
            ),
            transport="grpc",
            headers=caller.headers,
            request_id=caller.request_id,
            deadline=time.monotonic() + remaining if remaining is not None else None,
        )
        model = certificates.request_from_proto(request, model)
        certificate = await certificates.fetch_certificate(caller.pipeline, model)
        return certificates.response_to_proto(certificate, caller.request_id)


def server_options(server: ServerConfig, *, reuse_port: bool = False) -> list[tuple[str, int]]:
    """Transport limits raised above ours, so oversize inputs meet our reason codes;
    ``SO_REUSEPORT`` only when worker processes share the port."""
    metadata = metadata_ceiling(server)
    return [
        ("grpc.max_receive_message_length", message_ceiling(server)),
        ("grpc.max_send_message_length", 16 * 1024 * 1024),
        ("grpc.max_metadata_size", metadata),
        ("grpc.absolute_max_metadata_size", metadata),
        ("grpc.so_reuseport", 1 if reuse_port else 0),
    ]


class GrpcServer:
    """The grpc.aio server with the proxy, health and reflection services.

    :param tls: serve TLS with this listener's live certificate (plain when None).
    :param reuse_port: share the port with other worker processes.
    """

    def __init__(
        self,
        pipeline: Callable[[], Pipeline],
        server: ServerConfig,
        drain: Drain | None = None,
        *,
        tls: ListenerTls | None = None,
        reuse_port: bool = False,
    ) -> None:
        self._config = server
        self.server = grpc.aio.server(options=server_options(server, reuse_port=reuse_port))
        self._wrapper = CallWrapper(pipeline, drain)
        self._wrapper.add_to(self.server, LicenseProxyServicer())
        self.health = health.aio.HealthServicer()
        health_pb2_grpc.add_HealthServicer_to_server(self.health, self.server)
        reflection.enable_server_reflection(
            (SERVICE_NAME, health.SERVICE_NAME, reflection.SERVICE_NAME), self.server
        )
        address = f"{server.grpc.host}:{server.grpc.port}"
        if ":" in server.grpc.host:
            address = f"[{server.grpc.host}]:{server.grpc.port}"
        try:
            if tls is not None:
                self.port = self.server.add_secure_port(address, tls.grpc_credentials())
            else:
                self.port = self.server.add_insecure_port(address)
        except RuntimeError as exc:
            raise listen_error("gRPC", server.grpc.host, server.grpc.port, exc) from None
        if self.port == 0:
            raise listen_error(
                "gRPC", server.grpc.host, server.grpc.port, OSError("grpc could not bind")
            )

    async def start(self) -> None:
        """Start serving and report SERVING on the health service."""
        await self.server.start()
        await self.set_serving(True)

    async def set_serving(self, serving: bool) -> None:
        """Report SERVING or NOT_SERVING for the proxy and the overall health."""
        status = (
            health_pb2.HealthCheckResponse.SERVING
            if serving
            else health_pb2.HealthCheckResponse.NOT_SERVING
        )
        for name in ("", SERVICE_NAME):
            await self.health.set(name, status)

    async def stop(self, grace: float) -> None:
        """Refuse new calls, let in-flight ones finish within ``grace`` seconds."""
        await self.set_serving(False)
        await self.server.stop(grace)
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(ANSWER_MARGIN):
                await self._wrapper.settled()


__all__ = [
    "ERROR_DOMAIN",
    "REQUEST_ID_METADATA",
    "CallWrapper",
    "GrpcServer",
    "error_details",
    "error_status",
]
