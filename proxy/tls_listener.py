"""TLS as the listeners run it: the live certificate of each, swapped on reload, and the
HTTP side's handshake done by the proxy itself so that failures are counted.

- :class:`ListenerTls` holds a listener's current :class:`ssl.SSLContext` (HTTP) and
  hands grpc a certificate-configuration fetcher (gRPC). :meth:`ListenerTls.update`
  takes a reloaded config's files: new handshakes use them, connections already open
  keep theirs.
- :class:`TlsSite` is an aiohttp site that accepts plain TCP and runs the TLS
  handshake with ``loop.start_tls`` and the listener's *current* context, then hands
  the connection to aiohttp's request handler. A connection whose handshake fails
  (no client certificate, one the client CA did not sign, plain HTTP on a TLS port)
  never reaches aiohttp, and is counted in ``license_proxy_tls_handshake_failures_total``
  by reason. gRPC's handshakes happen inside grpc's C core, where Python sees neither
  success nor failure; they are counted as started only (the fetcher runs once per
  connection).
"""

from __future__ import annotations

import asyncio
import logging
import ssl
import threading
from collections.abc import Callable
from typing import Any, cast

import grpc
from aiohttp import web
from prometheus_client import Counter

from proxy.tls import TlsSettings, server_context

log = logging.getLogger("proxy.tls")

#: Seconds a client has to finish the TLS handshake on the HTTP listener.
HANDSHAKE_TIMEOUT = 10.0

HANDSHAKES = Counter(
    "license_proxy_tls_handshakes",
    "TLS handshakes started, by listener.",
    ["listener"],
)
HANDSHAKE_FAILURES = Counter(
    "license_proxy_tls_handshake_failures",
    "TLS handshakes that failed on the HTTP listener, by reason; the connection never "
    "reached the pipeline.",
    ["listener", "reason"],
)


def failure_reason(exc: BaseException) -> str:
    """A label for a failed handshake: what the client did wrong, in one word."""
    if isinstance(exc, ssl.SSLCertVerificationError):
        return "client_certificate_rejected"
    if isinstance(exc, ssl.SSLError):
        reason = exc.reason or ""
        if reason == "PEER_DID_NOT_RETURN_A_CERTIFICATE":
            return "client_certificate_missing"
        if reason in ("HTTP_REQUEST", "HTTPS_PROXY_REQUEST"):
            return "plain_http"
        if "VERSION" in reason or "PROTOCOL" in reason:
            return "protocol_version"
        return "tls_error"
    if isinstance(exc, TimeoutError):
        return "timeout"
    return "connection_closed"


class ListenerTls:
    """The live TLS material of one listener.

    :param listener: ``grpc`` or ``http`` (metric label and log lines).
    :param settings: the validated ``server.<listener>.tls``.
    """

    def __init__(self, listener: str, settings: TlsSettings) -> None:
        self.listener = listener
        self.settings = settings
        self.context = server_context(settings)
        self._lock = threading.Lock()
        self._pending: grpc.ServerCertificateConfiguration | None = None
        self._handshakes = HANDSHAKES.labels(listener)

    @property
    def requires_client_certificate(self) -> bool:
        """True when clients must present a certificate the client CA signed."""
        return self.settings.client_ca is not None

    def prepare(self, settings: TlsSettings) -> ssl.SSLContext:
        """Build the context for ``settings`` without using it (runs in a worker thread on
        reload; raises when OpenSSL refuses the files)."""
        return server_context(settings)

    def update(self, settings: TlsSettings, context: ssl.SSLContext) -> None:
        """Use ``settings`` (and its prepared ``context``) for every handshake from now on."""
        if settings == self.settings:
            return
        self.settings = settings
        self.context = context
        with self._lock:
            self._pending = _grpc_configuration(settings)
        log.info(
            "%s listener: TLS certificate reloaded (%s)", self.listener, settings.cert.reference
        )

    def grpc_credentials(self) -> grpc.ServerCredentials:
        """Server credentials whose certificate follows :meth:`update`."""
        # grpc's stubs say the fetcher must return a configuration; its documentation (and
        # its code) take None as "no change".
        fetch = cast(Callable[[], grpc.ServerCertificateConfiguration], self._fetch_configuration)
        return grpc.dynamic_ssl_server_credentials(
            _grpc_configuration(self.settings),
            fetch,
            require_client_authentication=self.requires_client_certificate,
        )

    def _fetch_configuration(self) -> grpc.ServerCertificateConfiguration | None:
        # grpc calls this before every handshake, from its own threads: a new configuration
        # once after an update, None ("no change") otherwise.
        self._handshakes.inc()
        with self._lock:
            pending, self._pending = self._pending, None
        return pending


def _grpc_configuration(settings: TlsSettings) -> grpc.ServerCertificateConfiguration:
    return grpc.ssl_server_certificate_configuration(
        [(settings.key.data, settings.cert.data)],
        root_certificates=settings.client_ca.data if settings.client_ca is not None else None,
    )


class _EarlyData(asyncio.Protocol):
    """Holds what arrives between the end of the handshake and the handover to aiohttp."""

    def __init__(self) -> None:
        self.chunks: list[bytes] = []
        self.eof = False
        self.lost: tuple[Exception | None] | None = None

    def data_received(self, data: bytes) -> None:
        self.chunks.append(data)

    def eof_received(self) -> None:
        # Over TLS the transport decides what an end of file closes; the return value is
        # ignored (and warned about when true).
        self.eof = True

    def connection_lost(self, exc: Exception | None) -> None:
        self.lost = (exc,)

    def hand_over(self, transport: asyncio.Transport, handler: asyncio.Protocol) -> None:
        transport.set_protocol(handler)
        handler.connection_made(transport)
        for chunk in self.chunks:
            handler.data_received(chunk)
        if self.eof:
            handler.eof_received()
        if self.lost is not None:
            handler.connection_lost(self.lost[0])


class _Accept(asyncio.Protocol):
    """The plain TCP connection, until the site has run its TLS handshake."""

    def __init__(self, site: TlsSite) -> None:
        self._site = site

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        transport.pause_reading()  # start_tls reads the ClientHello
        self._site.begin_handshake(transport)


class TlsSite(web.BaseSite):
    """An aiohttp TCP site serving TLS with the listener's current certificate.

    :param runner: the set-up runner whose server handles the connections.
    :param tls: the listener's :class:`ListenerTls`.
    :param reuse_port: share the port with other worker processes (``SO_REUSEPORT``).
    """

    __slots__ = ("_bound_port", "_handshakes", "_host", "_port", "_reuse_port", "_tls")

    def __init__(
        self,
        runner: web.BaseRunner,
        host: str,
        port: int,
        tls: ListenerTls,
        *,
        reuse_port: bool = False,
        backlog: int = 128,
    ) -> None:
        super().__init__(runner, backlog=backlog)
        self._host = host
        self._port = port
        self._tls = tls
        self._reuse_port = reuse_port
        self._bound_port = port
        self._handshakes: set[asyncio.Task[None]] = set()

    @property
    def name(self) -> str:
        """``https://host:port``."""
        return f"https://{self._host}:{self._bound_port}"

    @property
    def port(self) -> int:
        """The port listened on (the one the system chose, for port 0)."""
        return self._bound_port

    async def start(self) -> None:
        """Listen; each connection gets a handshake task."""
        await super().start()
        loop = asyncio.get_running_loop()
        self._server = await loop.create_server(
            lambda: _Accept(self),
            self._host,
            self._port,
            backlog=self._backlog,
            reuse_port=self._reuse_port or None,
        )
        if self._server.sockets:
            self._bound_port = self._server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        """Stop listening and abandon handshakes under way (those clients got no answer yet)."""
        for task in list(self._handshakes):
            task.cancel()
        await super().stop()

    def begin_handshake(self, transport: asyncio.Transport) -> None:
        """Run the handshake of a new connection in its own task."""
        task = asyncio.get_running_loop().create_task(self._handshake(transport))
        self._handshakes.add(task)
        task.add_done_callback(self._handshakes.discard)

    async def _handshake(self, transport: asyncio.Transport) -> None:
        loop = asyncio.get_running_loop()
        self._tls._handshakes.inc()
        early = _EarlyData()
        try:
            secure = await loop.start_tls(
                transport,
                early,
                self._tls.context,
                server_side=True,
                ssl_handshake_timeout=HANDSHAKE_TIMEOUT,
            )
        except asyncio.CancelledError:
            transport.abort()
            raise
        except (OSError, TimeoutError, EOFError) as exc:
            reason = failure_reason(exc)
            HANDSHAKE_FAILURES.labels(self._tls.listener, reason).inc()
            peer = transport.get_extra_info("peername")
            log.debug("TLS handshake from %s failed: %s", peer[0] if peer else "-", reason)
            transport.abort()
            return
        server: Any = self._runner.server
        if secure is None or server is None:  # closed meanwhile, or the runner cleaned up
            if secure is not None:
                secure.abort()
            return
        early.hand_over(secure, server())


__all__ = [
    "HANDSHAKES",
    "HANDSHAKE_FAILURES",
    "HANDSHAKE_TIMEOUT",
    "ListenerTls",
    "TlsSite",
    "failure_reason",
]
