"""The gRPC transport: ``LicenseProxyService`` on ``grpc.aio``, with health and reflection.

Handlers translate and call the pipeline; one function turns every
:class:`ProxyError` into a ``google.rpc.Status`` carrying ``ErrorInfo``, so no
handler aborts by itself.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass

import grpc
from google.protobuf import any_pb2
from google.rpc import error_details_pb2, status_pb2
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection

from licenseproxy.v1 import license_proxy_pb2 as pb
from licenseproxy.v1 import license_proxy_pb2_grpc as pb_grpc
from proxy import convert
from proxy.clientaddr import grpc_peer_ip, resolve_client_ip
from proxy.config import ServerConfig
from proxy.errors import ProxyError, Reason
from proxy.http_bridge import retry_after_seconds
from proxy.logs import accept_request_id, request_id_var
from proxy.pipeline import Pipeline
from proxy.tls import grpc_identities
from proxy.tls_listener import ListenerTls

log = logging.getLogger("proxy.grpc")

ERROR_DOMAIN = "licenseproxy"
SERVICE_NAME = pb.DESCRIPTOR.services_by_name["LicenseProxyService"].full_name


@dataclass(frozen=True)
class _Status(grpc.Status):
    code: grpc.StatusCode
    details: str
    trailing_metadata: tuple[tuple[str, str | bytes], ...]


def error_status(error: ProxyError, request_id: str) -> grpc.Status:
    """The gRPC status for ``error``: code, message, and ``google.rpc.Status`` with ``ErrorInfo``."""
    info = error_details_pb2.ErrorInfo(
        reason=error.reason.value,
        domain=ERROR_DOMAIN,
        metadata={**error.metadata, "request_id": request_id},
    )
    detail = any_pb2.Any()
    detail.Pack(info)
    status = status_pb2.Status(
        code=error.grpc_code.value[0], message=error.detail, details=[detail]
    )
    trailers: list[tuple[str, str | bytes]] = [
        ("grpc-status-details-bin", status.SerializeToString()),
        ("x-request-id", request_id),
    ]
    if error.retry_after is not None:
        trailers.append(("retry-after", retry_after_seconds(error.retry_after)))
    return _Status(error.grpc_code, error.detail, tuple(trailers))


def _internal_status(method: str, request_id: str) -> grpc.Status:
    """INTERNAL for an exception that is no :class:`ProxyError` (a bug): logged here, once,
    with its traceback; the caller gets the error model and its request id, never the
    exception's text (grpc.aio would send it as the status message)."""
    log.exception("unexpected error serving %s", method)
    error = ProxyError(Reason.INTERNAL, "the server failed to handle the request")
    return error_status(error, request_id)


def _metadata(context: grpc.aio.ServicerContext) -> dict[str, str]:
    return {
        key.lower(): value
        for key, value in (context.invocation_metadata() or ())
        if isinstance(value, str)
    }


class LicenseProxyServicer(pb_grpc.LicenseProxyServiceServicer):
    """``licenseproxy.v1.LicenseProxyService`` over the current pipeline."""

    def __init__(self, pipeline: Callable[[], Pipeline]) -> None:
        self._pipeline = pipeline

    def _caller(
        self, context: grpc.aio.ServicerContext, server: ServerConfig
    ) -> tuple[dict[str, str], str | None, str | None, bool, str]:
        headers = _metadata(context)
        peer = grpc_peer_ip(context.peer())
        # A caller whose verified client certificate names a trusted identity has the
        # powers of a trusted proxy's address (the auth context is read only then).
        caller = bool(server.trusted_callers) and not server.trusted_caller_set.isdisjoint(
            grpc_identities(context.auth_context())
        )
        client_ip, trusted = resolve_client_ip(peer, headers, server, trusted_caller=caller)
        # A trusted proxy's request id is believed even when it forwards an outside client.
        # Metadata keys are lower case, and so is request_id_header once validated.
        request_id = accept_request_id(
            headers.get(server.request_id_header), caller or server.is_trusted(peer)
        )
        return headers, peer, client_ip, trusted, request_id

    async def AcquireLicense(
        self, request: pb.AcquireLicenseRequest, context: grpc.aio.ServicerContext
    ) -> pb.AcquireLicenseResponse:
        """Run the pipeline for one license request."""
        pipeline = self._pipeline()
        headers, peer, client_ip, trusted, request_id = self._caller(context, pipeline.server)
        token = request_id_var.set(request_id)
        try:
            model = convert.acquire_request(
                request,
                transport="grpc",
                request_id=request_id,
                headers=headers,
                peer=peer,
                resolved_ip=client_ip,
                trusted=trusted,
                timeout=context.time_remaining(),
            )
            result = await pipeline.acquire(model)
            return convert.license_response(result)
        except ProxyError as error:
            await context.abort_with_status(error_status(error, request_id))
            raise  # abort_with_status raises; this line is never reached
        except Exception:
            await context.abort_with_status(_internal_status("AcquireLicense", request_id))
            raise
        finally:
            request_id_var.reset(token)

    async def InspectChallenge(
        self, request: pb.InspectChallengeRequest, context: grpc.aio.ServicerContext
    ) -> pb.InspectChallengeResponse:
        """Parse a challenge and report what it holds."""
        pipeline = self._pipeline()
        headers, peer, client_ip, trusted, request_id = self._caller(context, pipeline.server)
        token = request_id_var.set(request_id)
        try:
            model = convert.inspect_request(
                request,
                transport="grpc",
                request_id=request_id,
                headers=headers,
                peer=peer,
                resolved_ip=client_ip,
                trusted=trusted,
            )
            info = await pipeline.inspect_only(model)
            return convert.inspect_response(info, request_id)
        except ProxyError as error:
            await context.abort_with_status(error_status(error, request_id))
            raise
        except Exception:
            await context.abort_with_status(_internal_status("InspectChallenge", request_id))
            raise
        finally:
            request_id_var.reset(token)


def server_options(server: ServerConfig, *, reuse_port: bool = False) -> list[tuple[str, int]]:
    """Transport limits raised above ours, so oversize inputs meet our reason codes;
    ``SO_REUSEPORT`` only when worker processes share the port."""
    largest_message = server.challenge_limit(None) + server.max_token_bytes + 64 * 1024
    metadata = max(64 * 1024, 2 * server.max_token_bytes + 16 * 1024)
    return [
        ("grpc.max_receive_message_length", largest_message * 2),
        ("grpc.max_send_message_length", 16 * 1024 * 1024),
        ("grpc.max_metadata_size", metadata),
        ("grpc.absolute_max_metadata_size", metadata * 2),
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
        *,
        tls: ListenerTls | None = None,
        reuse_port: bool = False,
    ) -> None:
        self._config = server
        self.server = grpc.aio.server(options=server_options(server, reuse_port=reuse_port))
        pb_grpc.add_LicenseProxyServiceServicer_to_server(
            LicenseProxyServicer(pipeline), self.server
        )
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
            raise OSError(f"gRPC cannot listen on {address}: {exc}") from None
        if self.port == 0:
            raise OSError(f"gRPC cannot listen on {address}")

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


__all__ = ["ERROR_DOMAIN", "GrpcServer", "error_status"]
