"""The HTTP bridge: the same pipeline for players and services that can't speak gRPC.

- ``POST /v1/licenses/{drm}``: the raw challenge in, the raw license out;
- ``POST /v1/license:acquire``, ``POST /v1/challenge:inspect`` and
  ``POST /v1/certificate:get``: the gRPC methods in the canonical proto3 JSON mapping;
- ``GET /v1/certificates/{widevine|fairplay}``: the certificate players fetch first;
- ``GET /healthz``, ``/readyz``, and ``/metrics`` only when ``server.http.metrics`` says so
  (it is served on the admin listener, :mod:`proxy.admin.api`).

One middleware gives every answer its request id and CORS headers and turns
every error, aiohttp's own 404/405/413 included, into problem+json (RFC 9457).
"""

from __future__ import annotations

import asyncio
import difflib
import logging
import re
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web
from aiohttp.http_exceptions import HttpProcessingError
from google.protobuf import json_format
from google.protobuf.descriptor import Descriptor

from licenseproxy.v1 import license_proxy_pb2 as pb
from proxy import certificates, convert, metrics
from proxy.clientaddr import normalize_ip, resolve_client_ip
from proxy.config import ServerConfig
from proxy.encoding import parse_key_id
from proxy.errors import ProxyError, Reason
from proxy.http_access import loggable_path
from proxy.http_certificates import certificate_response
from proxy.http_cors import Cors
from proxy.http_problems import (
    ClientGone,
    RequestTimeout,
    problem,
    transport_error,
)
from proxy.logs import accept_request_id, request_id_var
from proxy.model import ClientInfo, DrmSystem, LicenseRequest
from proxy.pipeline import Pipeline
from proxy.shutdown import Drain
from proxy.tls import certificate_identities

log = logging.getLogger("proxy.http")

REQUEST_ID: web.RequestKey[str] = web.RequestKey("request_id", str)
TRUSTED_CALLER: web.RequestKey[bool] = web.RequestKey("trusted_caller", bool)
#: The answering worker's number, on every answer when worker processes serve.
WORKER_HEADER = "X-Proxy-Worker"
PIPELINE: web.AppKey[Callable[[], Pipeline]] = web.AppKey("pipeline")
READY: web.AppKey[Callable[[], bool]] = web.AppKey("ready")

#: The JSON routes carry the challenge in base64: a third larger, plus the other fields.
JSON_OVERHEAD = 64 * 1024


class HttpBridge:
    """Builds the aiohttp application over a pipeline getter."""

    def __init__(
        self,
        pipeline: Callable[[], Pipeline],
        ready: Callable[[], bool],
        server: ServerConfig,
        *,
        extra_headers: tuple[str, ...] = (),
        drain: Drain | None = None,
        worker_id: str | None = None,
    ) -> None:
        self._pipeline = pipeline
        self._server = server
        self._drain = drain or Drain()
        self._worker_id = worker_id
        # CORS follows the pipeline serving now, so a reload can change it.
        self._cors_for: tuple[Pipeline | None, Cors] = (None, Cors(server, extra_headers))
        self.raw_limit = server.challenge_limit(None)
        self.json_limit = self.raw_limit * 4 // 3 + server.max_token_bytes + JSON_OVERHEAD
        self.app = web.Application(
            middlewares=[self._middleware], client_max_size=self.json_limit * 2
        )
        self.app[PIPELINE] = pipeline
        self.app[READY] = ready
        self.app.router.add_post("/v1/licenses/{drm}", self.license_raw)
        self.app.router.add_post("/v1/license:acquire", self.license_json)
        self.app.router.add_post("/v1/challenge:inspect", self.inspect_json)
        self.app.router.add_get("/v1/certificates/{drm}", self.certificate)
        self.app.router.add_post("/v1/certificate:get", self.certificate_json)
        self.app.router.add_get("/healthz", self.healthz)
        self.app.router.add_get("/readyz", self.readyz)
        if server.http.metrics:
            self.app.router.add_get("/metrics", self.metrics)

    # -- middleware ------------------------------------------------------------------

    @web.middleware
    async def _middleware(
        self, request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
    ) -> web.StreamResponse:
        pipeline = self._pipeline()
        server = pipeline.server
        cors = self._cors_of(pipeline)
        caller = _trusted_caller(request, server)
        request[TRUSTED_CALLER] = caller
        trusted = caller or server.is_trusted(normalize_ip(request.remote))
        request_id = accept_request_id(request.headers.get(server.request_id_header), trusted)
        request[REQUEST_ID] = request_id
        token = request_id_var.set(request_id)
        close_now = False
        try:
            if request.method == "OPTIONS":
                response: web.StreamResponse = cors.preflight(request)
            else:
                try:
                    async with self._drain.request():
                        response = await handler(request)
                except ProxyError as error:
                    response = problem(error, request_id, texts=server.problems)
                    close_now = isinstance(error, RequestTimeout)
                except web.HTTPException as exc:
                    if exc.status < 400:
                        raise
                    refused, status = transport_error(exc)
                    response = problem(refused, request_id, status=status, texts=server.problems)
                except Exception:
                    # A bug, not the caller's fault: logged once here, never echoed.
                    log.exception(
                        "unexpected error serving %s %s",
                        request.method,
                        loggable_path(request.raw_path),
                    )
                    internal = ProxyError(
                        Reason.INTERNAL, "the server failed to handle the request"
                    )
                    response = problem(internal, request_id)
            response.headers["X-Request-Id"] = request_id
            if self._worker_id is not None:
                response.headers[WORKER_HEADER] = self._worker_id
            cors.apply(request, response)
            if close_now:
                await self._send_and_close(request, response)
            return response
        finally:
            request_id_var.reset(token)

    @staticmethod
    async def _send_and_close(request: web.Request, response: web.StreamResponse) -> None:
        """Send ``response`` and close the connection at once: the rest of a body that
        timed out may never come, and aiohttp would otherwise wait for it (its lingering
        close) before closing. aiohttp sees the answer as sent and does not send it again."""
        response.force_close()
        await response.prepare(request)
        await response.write_eof()
        if request.protocol is not None:
            request.protocol.force_close()

    # -- helpers ---------------------------------------------------------------------

    def _cors_of(self, pipeline: Pipeline) -> Cors:
        owner, cors = self._cors_for
        if owner is not pipeline:
            cors = Cors(pipeline.server, pipeline.request_headers)
            self._cors_for = (pipeline, cors)
        return cors

    def _client(self, request: web.Request, server: ServerConfig) -> ClientInfo:
        peer = normalize_ip(request.remote)
        caller = request.get(TRUSTED_CALLER, False)
        ip, trusted = resolve_client_ip(peer, request.headers, server, trusted_caller=caller)
        return ClientInfo(
            ip_address=ip,
            user_agent=request.headers.get("User-Agent"),
            peer=peer,
            trusted=trusted,
        )

    @staticmethod
    async def _read(request: web.Request, limit: int, too_large: Reason, seconds: float) -> bytes:
        """The whole body, within ``limit`` bytes and ``seconds`` (the whole of it, not
        per chunk: a body trickled a byte at a time is cut off all the same)."""
        if request.content_length is not None and request.content_length > limit:
            raise ProxyError(too_large, f"the request body is larger than {limit} bytes")
        content = request.content
        chunks = []
        size = 0
        try:
            if content.is_eof():
                # The whole body is already here (a challenge usually comes in one segment
                # with its headers): take it without arming a timer or iterating.
                body = content.read_nowait()
                if len(body) > limit:
                    raise ProxyError(too_large, f"the request body is larger than {limit} bytes")
                return body
            async with asyncio.timeout(seconds):
                async for chunk in request.content.iter_chunked(64 * 1024):
                    size += len(chunk)
                    if size > limit:
                        raise ProxyError(
                            too_large, f"the request body is larger than {limit} bytes"
                        )
                    chunks.append(chunk)
        except TimeoutError:
            raise RequestTimeout(seconds) from None
        except ConnectionError:
            # The client went away mid-body: its doing, and nobody is left to answer.
            log.debug("the client closed the connection before its request body arrived")
            raise ClientGone() from None
        except (web.RequestPayloadError, HttpProcessingError):
            # A Content-Encoding that does not decode, broken chunked framing, a body cut
            # short: aiohttp's message quotes the input, so it is not passed on.
            raise ProxyError(
                Reason.REQUEST_INVALID,
                "the request body could not be read (broken Content-Encoding or framing)",
            ) from None
        return b"".join(chunks)

    # -- routes ----------------------------------------------------------------------

    async def license_raw(self, request: web.Request) -> web.Response:
        """``POST /v1/licenses/{drm}``: the raw challenge in, the raw license out."""
        try:
            drm = DrmSystem(request.match_info["drm"])
        except ValueError:
            raise ProxyError(
                Reason.DRM_NOT_SUPPORTED,
                "the DRM system must be one of widevine, playready, fairplay, clearkey",
            ) from None
        pipeline = self._pipeline()
        server = pipeline.server
        body = await self._read(
            request,
            server.challenge_limit(drm),
            Reason.CHALLENGE_TOO_LARGE,
            server.request_read_timeout,
        )
        try:
            key_ids = tuple(parse_key_id(k) for k in request.query.getall("key_id", ()))
        except ValueError:
            raise ProxyError(
                Reason.REQUEST_INVALID, "key_id is not a key id", field="key_id"
            ) from None
        model = LicenseRequest(
            challenge=body,
            drm_system=drm,
            content_id=request.query.get("content_id") or None,
            key_ids=convert.key_id_hints(key_ids),
            client=self._client(request, server),
            transport="http",
            headers=request.headers,
            query=request.query,
            request_id=request[REQUEST_ID],
        )
        result = await pipeline.acquire(model)
        response = web.Response(body=result.license, headers=result.headers)
        response.headers["Content-Type"] = result.content_type
        return response

    async def _json_message(self, request: web.Request, message: Any) -> Any:
        seconds = self._pipeline().server.request_read_timeout
        body = await self._read(request, self.json_limit, Reason.CHALLENGE_TOO_LARGE, seconds)
        try:
            json_format.Parse(body.decode("utf-8"), message)
        except (json_format.ParseError, UnicodeDecodeError, RecursionError) as exc:
            detail, field = _parse_error_text(exc, message.DESCRIPTOR)
            raise ProxyError(Reason.REQUEST_INVALID, detail, field=field) from None
        return message

    async def license_json(self, request: web.Request) -> web.Response:
        """``POST /v1/license:acquire``: ``AcquireLicense`` in the proto3 JSON mapping."""
        message = await self._json_message(request, pb.AcquireLicenseRequest())
        pipeline = self._pipeline()
        client = self._client(request, pipeline.server)
        model = convert.acquire_request(
            message,
            transport="http",
            request_id=request[REQUEST_ID],
            headers=request.headers,
            peer=client.peer,
            resolved_ip=client.ip_address,
            trusted=client.trusted,
        )
        result = await pipeline.acquire(model)
        return _json_response(convert.license_response(result))

    async def inspect_json(self, request: web.Request) -> web.Response:
        """``POST /v1/challenge:inspect``: ``InspectChallenge`` in the proto3 JSON mapping."""
        message = await self._json_message(request, pb.InspectChallengeRequest())
        pipeline = self._pipeline()
        client = self._client(request, pipeline.server)
        model = convert.inspect_request(
            message,
            transport="http",
            request_id=request[REQUEST_ID],
            headers=request.headers,
            peer=client.peer,
            resolved_ip=client.ip_address,
            trusted=client.trusted,
        )
        info = await pipeline.inspect_only(model)
        return _json_response(convert.inspect_response(info, request[REQUEST_ID]))

    async def certificate(self, request: web.Request) -> web.Response:
        """``GET /v1/certificates/{drm}``: the Widevine service certificate or the FairPlay
        application certificate (:mod:`proxy.certificates`)."""
        pipeline = self._pipeline()
        model = LicenseRequest(
            challenge=b"",
            content_id=request.query.get("content_id") or None,
            client=self._client(request, pipeline.server),
            transport="http",
            headers=request.headers,
            query=request.query,
            request_id=request[REQUEST_ID],
        )
        return await certificate_response(pipeline, request, model)

    async def certificate_json(self, request: web.Request) -> web.Response:
        """``POST /v1/certificate:get``: ``GetCertificate`` in the proto3 JSON mapping."""
        message = await self._json_message(request, pb.GetCertificateRequest())
        pipeline = self._pipeline()
        model = LicenseRequest(
            challenge=b"",
            client=self._client(request, pipeline.server),
            transport="http",
            headers=request.headers,
            request_id=request[REQUEST_ID],
        )
        model = certificates.request_from_proto(message, model)
        certificate = await certificates.fetch_certificate(pipeline, model)
        return _json_response(certificates.response_to_proto(certificate, request[REQUEST_ID]))

    async def healthz(self, request: web.Request) -> web.Response:
        """Alive."""
        return web.json_response({"status": "ok"})

    async def readyz(self, request: web.Request) -> web.Response:
        """Ready: config loaded and listeners up (503 while starting or draining)."""
        if request.app[READY]():
            return web.json_response({"status": "ready"})
        return web.json_response({"status": "not ready"}, status=503)

    async def metrics(self, request: web.Request) -> web.Response:
        """Prometheus text format (the whole host when worker processes serve)."""
        body, content_type = metrics.exposition()
        response = web.Response(body=body)
        response.headers["Content-Type"] = content_type
        return response


def _trusted_caller(request: web.Request, server: ServerConfig) -> bool:
    """True when the connection's verified client certificate names one of
    ``server.trusted_callers`` (read only when some are configured)."""
    if not server.trusted_callers or request.transport is None:
        return False
    peercert = request.transport.get_extra_info("peercert")
    return not server.trusted_caller_set.isdisjoint(certificate_identities(peercert))


def _json_response(message: Any) -> web.Response:
    return web.Response(
        text=json_format.MessageToJson(message, indent=None),
        content_type="application/json",
        charset="utf-8",
    )


_FAILED_FIELD = re.compile(r"Failed to parse (\w+) field")


def _field_path(descriptor: Descriptor, names: list[str]) -> tuple[str, str] | None:
    """``("client.ipAddress", "client.ip_address")`` (JSON and proto paths) when every name is
    a field of the schema (its proto or JSON name), else None: only names the schema
    defines are ever written back."""
    json_path = []
    proto_path = []
    current: Descriptor | None = descriptor
    for name in names:
        if current is None:
            return None
        field = current.fields_by_name.get(name) or current.fields_by_camelcase_name.get(name)
        if field is None:
            return None
        json_path.append(field.json_name)
        proto_path.append(field.name)
        current = field.message_type
    if not json_path:
        return None
    return ".".join(json_path), ".".join(proto_path)


_UNKNOWN_FIELD = re.compile(r'has no field named "(.*?)" at "([\w.]*)"')


def _unknown_field_text(
    descriptor: Descriptor, name: str, parents: list[str]
) -> tuple[str, str | None]:
    """Where the unknown field sits, and the defined field it resembles, naming the client's
    field only then: protobuf takes an array's items for keys, so the "name" may be a value
    (a token), and only a near-miss of a defined name is safe to write back. The second
    item is the proto path to blame (BadRequest), if any."""
    paths = _field_path(descriptor, parents) if parents else None
    holder: Descriptor | None = descriptor
    for parent in parents:
        field = holder.fields_by_name.get(parent) if holder is not None else None
        if field is None and holder is not None:
            field = holder.fields_by_camelcase_name.get(parent)
        holder = field.message_type if field is not None else None
    inside = f" in {paths[0]}" if paths else ""
    parent_path = paths[1] if paths else None
    if holder is None:
        return (
            f"the body is not a valid message: it has a field the message does not define{inside}",
            parent_path,
        )
    close = _resembling(name, holder)
    if close is not None:
        blamed = f"{parent_path}.{name}" if parent_path else name
        return (
            f"the body is not a valid message: unknown field {name!r}{inside} "
            f"(did you mean {close!r}?)",
            blamed,
        )
    defined = ", ".join(f.json_name for f in holder.fields)
    return (
        f"the body is not a valid message: it has a field the message does not define{inside} "
        f"(its fields: {defined})",
        parent_path,
    )


def _resembling(name: str, holder: Descriptor) -> str | None:
    """The JSON name of the defined field ``name`` is a near-miss of, if any."""
    lowered = name.lower()
    for field in holder.fields:
        for spelling in (field.json_name, field.name):
            if len(lowered) >= 2 and (
                spelling.lower().startswith(lowered) or lowered.startswith(spelling.lower())
            ):
                return field.json_name
    spellings = {f.name: f.json_name for f in holder.fields}
    spellings.update({f.json_name: f.json_name for f in holder.fields})
    close = difflib.get_close_matches(name, list(spellings), n=1, cutoff=0.75)
    return spellings[close[0]] if close else None


def _parse_error_text(exc: Exception, descriptor: Descriptor) -> tuple[str, str | None]:
    """A fixed sentence naming at most the schema field at fault, and that field's proto path:
    protobuf's messages quote the values and keys the client sent, which may be a token."""
    if isinstance(exc, UnicodeDecodeError):
        return "the body is not UTF-8", None
    if isinstance(exc, RecursionError):
        return "the body is nested too deeply", None
    text = str(exc)
    if text.startswith("Failed to load JSON"):
        return "the body is not valid JSON", None
    unknown = _UNKNOWN_FIELD.search(text)
    if unknown is not None:
        return _unknown_field_text(descriptor, unknown[1], unknown[2].split(".")[1:])
    if "has no field named" in text:
        return "the body is not a valid message: it has a field the message does not define", None
    path = _field_path(descriptor, _FAILED_FIELD.findall(text))
    if path is not None:
        return (
            f"the body is not a valid message: field {path[0]} has a value of the wrong form",
            path[1],
        )
    return "the body is not a valid message", None
