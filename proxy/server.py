"""Both listeners on one asyncio loop, sharing one pipeline; drain on SIGTERM, reload on SIGHUP."""

from __future__ import annotations

import asyncio
import logging
import ssl
from collections.abc import Awaitable, Callable
from contextlib import AsyncExitStack
from typing import Any

from aiohttp import web

from proxy.admin.actions import AdminAction, AdminActionSink
from proxy.admin.api import AdminApi
from proxy.builder import rebuilt
from proxy.config import ListenerConfig, ServerConfig
from proxy.connlimits import ConnectionLimits
from proxy.grpc_server import GrpcServer
from proxy.http_access import RedactingAccessLogger
from proxy.http_bridge import HttpBridge
from proxy.http_protocol import ProxyAppRunner, install_log_filters, runner_options
from proxy.listeners import listen_error
from proxy.pipeline import Pipeline
from proxy.shutdown import ANSWER_MARGIN, CLOSE_MARGIN, Drain
from proxy.signals import ServingSignals
from proxy.tls import TlsSettings
from proxy.tls_listener import ListenerTls, TlsSite

log = logging.getLogger("proxy.server")


#: [server] settings the listeners were built with: a reload can't change them.
RESTART_ONLY = (
    "grpc",
    "http",
    "max_challenge_bytes",
    "max_token_bytes",
    "http_idle_timeout",
    "shutdown_grace",
    "workers",
    "header_timeout",
    "max_connections_per_client",
)


def _listener_shape(listener: ListenerConfig) -> tuple[Any, ...]:
    """What a listener is built with. Its certificate files are not part of it: a reload
    swaps them; turning TLS or client certificates on or off needs a restart."""
    tls = listener.tls
    return (listener.host, listener.port, tls is not None, tls is not None and tls.client_ca)


def restart_only_changes(old: Pipeline, fresh: Pipeline) -> list[str]:
    """The listener-bound settings that differ between two pipelines."""
    changed = []
    for name in RESTART_ONLY:
        before, after = getattr(old.server, name), getattr(fresh.server, name)
        if isinstance(before, ListenerConfig) and isinstance(after, ListenerConfig):
            before, after = _listener_shape(before), _listener_shape(after)
        if before != after:
            changed.append(f"server.{name}")
    if old.log.access != fresh.log.access:
        changed.append("log.access")
    if _admin_listener(old) != _admin_listener(fresh):
        changed.append("admin")
    return changed


def _admin_listener(pipeline: Pipeline) -> tuple[object, ...] | None:
    """What the admin listener is built with (its token may change on reload)."""
    admin = pipeline.admin
    return None if admin is None else (admin.host, admin.port, admin.metrics)


def _running_loop_name() -> str:
    """``uvloop`` or ``asyncio``: the loop serving (``server.event_loop``)."""
    module = type(asyncio.get_running_loop()).__module__
    return "uvloop" if module.startswith("uvloop") else "asyncio"


class ProxyApp:
    """The running proxy: one pipeline (swapped on reload), a gRPC server and the HTTP bridge.

    :param pipeline: the pipeline to serve.
    :param rebuild: builds a fresh pipeline from the config on SIGHUP; None disables reload.
    :param reuse_port: bind with ``SO_REUSEPORT``, sharing both ports with the other
        worker processes of a supervisor (:mod:`proxy.supervisor`).
    :param worker_id: this worker's number, sent in ``X-Proxy-Worker`` on HTTP answers.
    :param on_admin_action: receives every admin API action; by default the current
        pipeline's decision log (one ``proxy.admin`` log line when ``[audit]`` is off).
    """

    def __init__(
        self,
        pipeline: Pipeline,
        *,
        rebuild: Callable[[], Pipeline] | None = None,
        access_log: bool = True,
        reuse_port: bool = False,
        worker_id: str | None = None,
        on_admin_action: AdminActionSink | None = None,
    ) -> None:
        self.pipeline = pipeline
        self.on_admin_action: AdminActionSink = on_admin_action or self._audit_admin_action
        self.access_log = access_log
        self.rebuild = rebuild
        self.reuse_port = reuse_port
        self.worker_id = worker_id
        self.tls: dict[str, ListenerTls] = {}
        #: Called after every reload attempt with its outcome (the worker reports it).
        self.on_reload: Callable[[bool], None] | None = None
        #: What the admin API's reload does instead of :meth:`reload` (a worker hands it to
        #: its supervisor, so that every worker reloads).
        self.admin_reload: Callable[[], Awaitable[bool]] | None = None
        self.ready = False
        self._stack = AsyncExitStack()
        self._pipeline_stacks: dict[int, AsyncExitStack] = {}
        self._stopped = asyncio.Event()
        self._reload_lock = asyncio.Lock()
        self.drain = Drain()
        self.grpc: GrpcServer | None = None
        self.runner: web.AppRunner | None = None
        self.grpc_port = 0
        self.http_port = 0
        self.admin_runner: web.AppRunner | None = None
        self.admin_port = 0

    def _audit_admin_action(self, action: AdminAction) -> None:
        self.pipeline.services.audit.admin(action)

    def current(self) -> Pipeline:
        """The pipeline new requests go to."""
        return self.pipeline

    async def _start_pipeline(self, pipeline: Pipeline) -> None:
        stack = AsyncExitStack()
        await stack.enter_async_context(pipeline.running())
        self._pipeline_stacks[id(pipeline)] = stack

    async def _close_pipeline(self, pipeline: Pipeline) -> None:
        stack = self._pipeline_stacks.pop(id(pipeline), None)
        if stack is not None:
            await stack.aclose()

    async def start(self) -> None:
        """Start the pipeline's background work, then both listeners; a taken port fails here."""
        server = self.pipeline.server
        await self._start_pipeline(self.pipeline)
        try:
            self.tls = {
                name: ListenerTls(name, listener.tls)
                for name, listener in (("grpc", server.grpc), ("http", server.http))
                if listener.tls is not None
            }
            self.grpc = GrpcServer(
                self.current,
                server,
                self.drain,
                tls=self.tls.get("grpc"),
                reuse_port=self.reuse_port,
            )
            await self.grpc.start()
            self.grpc_port = self.grpc.port
            bridge = HttpBridge(
                self.current,
                lambda: self.ready,
                server,
                extra_headers=self.pipeline.request_headers,
                drain=self.drain,
                worker_id=self.worker_id,
            )
            install_log_filters()
            self.runner = ProxyAppRunner(
                bridge.app,
                handle_signals=False,
                access_log_class=RedactingAccessLogger,
                access_log=logging.getLogger("aiohttp.access") if self.access_log else None,
                shutdown_timeout=server.shutdown_grace + ANSWER_MARGIN,
                limits=ConnectionLimits(server),
                **runner_options(server),
            )
            await self.runner.setup()
            site: web.BaseSite
            if "http" in self.tls:
                site = TlsSite(
                    self.runner,
                    server.http.host,
                    server.http.port,
                    self.tls["http"],
                    reuse_port=self.reuse_port,
                )
            else:
                site = web.TCPSite(
                    self.runner, server.http.host, server.http.port, reuse_port=self.reuse_port
                )
            try:
                await site.start()
            except OSError as exc:
                raise listen_error("HTTP", server.http.host, server.http.port, exc) from None
            self.http_port = self.runner.addresses[0][1]
            await self._start_admin()
        except BaseException:
            await self.stop()
            raise
        self.ready = True
        log.info(
            "serving gRPC on %s:%d and HTTP on %s:%d%s%s on %s",
            server.grpc.host,
            self.grpc_port,
            server.http.host,
            self.http_port,
            f" with TLS on {' and '.join(self.tls)}" if self.tls else "",
            f" (worker {self.worker_id})" if self.worker_id is not None else "",
            _running_loop_name(),
        )

    async def _start_admin(self) -> None:
        """The admin API and /metrics on their own listener, when ``[admin]`` is configured."""
        admin = self.pipeline.admin
        if admin is None:
            return
        api = AdminApi(
            self.current,
            admin,
            lambda action: self.on_admin_action(action),
            self.admin_reload or (self.reload if self.rebuild is not None else None),
        )
        # ProxyAppRunner: its connections' drain is bounded as a whole (proxy.shutdown).
        self.admin_runner = ProxyAppRunner(
            api.app,
            handle_signals=False,
            access_log=logging.getLogger("aiohttp.access") if self.access_log else None,
            access_log_class=RedactingAccessLogger,
            shutdown_timeout=self.pipeline.server.shutdown_grace + ANSWER_MARGIN,
        )
        await self.admin_runner.setup()
        site = web.TCPSite(self.admin_runner, admin.host, admin.port, reuse_port=self.reuse_port)
        try:
            await site.start()
        except OSError as exc:
            raise OSError(
                f"the admin listener (admin.host, admin.port) can't start: {exc}"
            ) from exc
        self.admin_port = self.admin_runner.addresses[0][1]
        log.info("serving the admin API on %s:%d", admin.host, self.admin_port)

    async def stop(self) -> None:
        """Readiness off, then both listeners drain within the grace period, then resources close.

        Requests still in flight when the grace runs out are answered with a typed error
        (:mod:`proxy.shutdown`); the whole stop takes at most ``shutdown_delay +
        shutdown_grace`` plus the two margins of :mod:`proxy.shutdown`.
        """
        self.ready = False
        server = self.pipeline.server
        if self.grpc is not None:
            await self.grpc.set_serving(False)
        if server.shutdown_delay and self.runner is not None:
            await asyncio.sleep(server.shutdown_delay)
        grace = server.shutdown_grace
        self.drain.begin(grace)
        stops = []
        if self.grpc is not None:
            stops.append(self.grpc.stop(grace + ANSWER_MARGIN))
        if self.runner is not None:
            stops.append(self.runner.cleanup())
        if self.admin_runner is not None:
            stops.append(self.admin_runner.cleanup())
        await asyncio.gather(*stops, return_exceptions=True)
        self.grpc = None
        self.runner = None
        self.admin_runner = None
        try:
            async with asyncio.timeout(CLOSE_MARGIN):
                for key in list(self._pipeline_stacks):
                    await self._pipeline_stacks.pop(key).aclose()
        except TimeoutError:
            log.warning("resources still closing after %g s were left to the exit", CLOSE_MARGIN)
        self._stopped.set()

    async def reload(self) -> bool:
        """Build a new pipeline and swap it in; in-flight requests finish on the old one.

        Reloads run one at a time, so two quick SIGHUPs never leave a pipeline
        running unclosed. The build (reading files, parsing keys, importing
        plugins) runs in a worker thread, so requests keep flowing meanwhile; a
        build or start that fails for any reason leaves the running config.
        """
        if self.rebuild is None:
            log.warning("reload refused: this proxy was started without a config to read again")
            return False
        async with self._reload_lock:
            old = await self._swap(self.rebuild)
            if self.on_reload is not None:
                self.on_reload(old is not None)
            if old is None:
                return False
            await old.wait_idle(old.server.shutdown_grace)
            await self._close_pipeline(old)
            return True

    async def _swap(self, rebuild: Callable[[], Pipeline]) -> Pipeline | None:
        """Build, check and start a fresh pipeline and put it in place; the old one, or None
        when the reload was refused (logged here)."""
        fresh = await rebuilt(rebuild)
        if fresh is None:
            return None
        try:
            certificates = await asyncio.to_thread(self._prepare_tls, fresh.server)
        except (ssl.SSLError, OSError) as exc:
            # The files changed between validation and loading: the running certificate stays.
            log.error("reload refused, a TLS file could not be loaded: %s", exc)
            return None
        try:
            await self._start_pipeline(fresh)
        except Exception:
            log.exception("reload failed to start the new pipeline; the running one stays")
            return None
        old, self.pipeline = self.pipeline, fresh
        for listener, settings, context in certificates:
            listener.update(settings, context)
        changed = restart_only_changes(old, fresh)
        if changed:
            log.warning("these settings take effect only after a restart: %s", ", ".join(changed))
        log.info("configuration reloaded")
        return old

    def _prepare_tls(
        self, server: ServerConfig
    ) -> list[tuple[ListenerTls, TlsSettings, ssl.SSLContext]]:
        """The certificate contexts a reload brings, built before anything is swapped (in a
        worker thread). A listener that turns TLS on or off keeps what it has (a restart
        does that, and the reload says so)."""
        prepared = []
        for name, live in self.tls.items():
            settings = getattr(server, name).tls
            if settings is not None:
                prepared.append((live, settings, live.prepare(settings)))
        return prepared

    async def serve_forever(
        self,
        stop: asyncio.Event | None = None,
        on_ready: Callable[[], None] | None = None,
    ) -> None:
        """Start, then serve until SIGTERM/SIGINT (drain and exit); SIGHUP reloads.

        :param stop: also stop when this is set (a worker's supervisor went away).
        :param on_ready: called once both listeners serve.
        """
        stop = stop or asyncio.Event()
        signals = ServingSignals(stop, self.reload)
        signals.install()
        await self.start()
        if on_ready is not None:
            on_ready()
        try:
            await stop.wait()
            log.info("stopping: draining in-flight requests")
        finally:
            signals.remove()
            await self.stop()
            log.info("stopped")
