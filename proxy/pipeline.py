"""The license pipeline: the one place where a request's way is written down.

inspect -> authenticate -> authorize -> select policy -> select backends ->
call the vendor (with failover) -> normalize -> observers. Every step but the
vendor call is a hook; the transports (gRPC and the HTTP bridge) only
translate to and from :class:`~proxy.model.LicenseRequest` and
:class:`~proxy.model.LicenseResult`.
"""

from __future__ import annotations

import asyncio
import logging
import time
import weakref
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

from proxy import metrics
from proxy.admin.settings import AdminConfig
from proxy.challenge.initdata import (
    InitDataInfo,
    describe_format,
    looks_like_init_data,
    parse_init_data,
)
from proxy.config import CleanupContext, LogConfig, ServerConfig
from proxy.dispatch import Dispatcher
from proxy.errors import ProxyError, Reason
from proxy.logs import request_id_var
from proxy.model import (
    LICENSE_CONTENT_TYPES,
    ChallengeInfo,
    DrmSystem,
    LicenseRequest,
    LicenseResult,
    Principal,
    RequestContext,
)
from proxy.pluginhost import PluginHost
from proxy.policy import EffectivePolicy
from proxy.revocation import Revocations
from proxy.services import Services
from proxy.sessions import CONTINUING, attach_session
from proxy.stages import StageClock
from proxy.telemetry import Telemetry
from proxy.vendors import Backend

log = logging.getLogger("proxy.pipeline")


@dataclass(eq=False)
class Pipeline:
    """One configured pipeline; the transports share a single instance.

    Build it with :func:`proxy.builder.build_pipeline`; run its background
    work with ``async with pipeline.running():``.
    """

    host: PluginHost
    server: ServerConfig
    backends: dict[str, Backend]
    services: Services
    cleanup_contexts: list[CleanupContext] = field(default_factory=list)
    warnings: list[tuple[str, str]] = field(default_factory=list)
    log: LogConfig = field(default_factory=LogConfig)
    request_headers: tuple[str, ...] = ()
    """Request headers plugins read (CORS preflights allow them)."""
    telemetry: Telemetry | None = None
    """OpenTelemetry tracing (``[telemetry]``); None when off, and then nothing is traced."""
    admin: AdminConfig | None = None
    """``[admin]``, when the admin API is on (it also turns the revocation check on)."""
    certificates: dict[DrmSystem, bytes] = field(default_factory=dict)
    """Certificates given in config, served instead of a backend's (:mod:`proxy.certificates`)."""
    in_flight: int = 0

    def __post_init__(self) -> None:
        self.dispatcher = Dispatcher(self.backends, self.services, self.telemetry)
        self.revocations: Revocations | None = None
        if self.admin is not None and self.admin.checks_revocations:
            self.revocations = Revocations(
                self.services.state,
                self.services.clock,
                fail_open=self.admin.revocations.fail_open,
            )
        self._idle: asyncio.Event | None = None
        _LIVE_PIPELINES.add(self)

    async def wait_idle(self, grace: float) -> bool:
        """Wait until no request is in flight (at most ``grace`` seconds); True when idle."""
        if self.in_flight == 0:
            return True
        self._idle = asyncio.Event()
        try:
            async with asyncio.timeout(grace):
                await self._idle.wait()
        except TimeoutError:
            return False
        return True

    # -- lifecycle ---------------------------------------------------------------

    @asynccontextmanager
    async def running(self) -> AsyncIterator[Pipeline]:
        """Start the upstream client and every plugin's cleanup context; stop them on exit."""
        async with AsyncExitStack() as stack:
            upstream = self.services.upstream
            if upstream is not None:
                await upstream.start()
                stack.push_async_callback(upstream.close)
            for make in self.cleanup_contexts:
                await stack.enter_async_context(asynccontextmanager(make)())
            if self.telemetry is not None:
                # Last in, first out: spans of requests that finish while stopping still export.
                stack.push_async_callback(self.telemetry.shutdown)
            yield self

    # -- requests ------------------------------------------------------------------

    def new_context(
        self, request: LicenseRequest, operation: str = "AcquireLicense"
    ) -> RequestContext:
        """A fresh context for ``request`` (traced when it is a dry run); ``operation``
        names the request's span when telemetry is on."""
        telemetry = self.telemetry
        return RequestContext(
            request=request,
            services=self.services,
            request_id=request.request_id,
            trace=[] if request.dry_run else None,
            stages=StageClock() if telemetry is None else telemetry.stage_clock(request, operation),
        )

    async def inspect(self, ctx: RequestContext) -> ChallengeInfo:
        """Step 1: size check, then the first inspector that recognises the challenge."""
        request = ctx.request
        challenge = request.challenge
        if len(challenge) > self.server.challenge_limit(request.drm_system):
            raise ProxyError(
                Reason.CHALLENGE_TOO_LARGE,
                f"the challenge is larger than {self.server.challenge_limit(request.drm_system)} bytes",
            )
        if not challenge:
            raise ProxyError(Reason.CHALLENGE_INVALID, "the challenge is empty")
        try:
            info = await self.host.inspect_challenge(ctx)
        except ProxyError as error:
            # Only on the way out, so a license request never pays for the sniff.
            if error.reason is Reason.CHALLENGE_INVALID and looks_like_init_data(challenge):
                raise _init_data_refusal(challenge) from None
            raise
        if info is None and looks_like_init_data(challenge):
            raise _init_data_refusal(challenge)
        if info is None:
            if request.drm_system is not None:
                raise ProxyError(
                    Reason.DRM_NOT_SUPPORTED,
                    f"no inspector for {request.drm_system.value} challenges is loaded",
                )
            raise ProxyError(Reason.CHALLENGE_INVALID, "the DRM system could not be detected")
        if request.drm_system is None and len(challenge) > self.server.challenge_limit(
            info.drm_system
        ):
            raise ProxyError(
                Reason.CHALLENGE_TOO_LARGE,
                f"the challenge is larger than {self.server.challenge_limit(info.drm_system)} bytes",
            )
        if request.key_ids and info.key_ids:
            known = set(info.key_ids)
            for index, hint in enumerate(request.key_ids):
                if hint not in known:
                    raise ProxyError(
                        Reason.REQUEST_INVALID,
                        "a key id hint is not among the challenge's key ids",
                        field=f"key_ids[{index}]",
                    )
        ctx.challenge = info
        return info

    async def acquire(self, request: LicenseRequest) -> LicenseResult:
        """Run the whole pipeline for one license request."""
        ctx = self.new_context(request)
        stages = ctx.stages
        token = request_id_var.set(ctx.request_id)
        self.in_flight += 1
        if metrics.MULTIPROCESS:
            metrics.IN_FLIGHT.inc()
        try:
            result = await self._acquire(ctx)
        except ProxyError as error:
            stages.stop(error)
            await self.host.license_denied(ctx, error)
            self._count(ctx, "denied", error.reason.value)
            raise
        except Exception:
            log.exception("unexpected failure")
            internal = ProxyError(Reason.INTERNAL)
            stages.stop(internal)
            await self.host.license_denied(ctx, internal)
            self._count(ctx, "denied", internal.reason.value)
            raise internal from None
        except asyncio.CancelledError:
            # The caller went away (deadline, disconnect, shutdown grace). Observers must
            # still hear of it: the state rules give back a token use or a session slot
            # they already took, audit logs stay complete.
            cancelled = ProxyError(Reason.UPSTREAM_TIMEOUT, "the request was cancelled")
            ctx.cancelled = True
            stages.stop(cancelled)
            await asyncio.shield(self.host.license_denied(ctx, cancelled))
            self._count(ctx, "cancelled", cancelled.reason.value)
            raise
        else:
            stages.stop()
            await self.host.license_issued(ctx, result)
            if result.dry_run:
                self._count(ctx, "dry_run", "")
            else:
                self._count(ctx, "issued", "")
                self._count_license(result)
            return result
        finally:
            stages.close(ctx)
            self.in_flight -= 1
            if metrics.MULTIPROCESS:
                metrics.IN_FLIGHT.dec()
            request_id_var.reset(token)
            if self._idle is not None and self.in_flight == 0:
                self._idle.set()

    async def _acquire(self, ctx: RequestContext) -> LicenseResult:
        stages = ctx.stages  # one mark per stage: the decision log's latencies, the spans
        dry_run_by_claim = ctx.request.dry_run and self._dry_run_needs_claim(ctx.request)
        stages.enter("inspect")
        info = await self.inspect(ctx)
        stages.enter("authenticate")
        principal = await self.authenticate(ctx)
        if self.revocations is not None:
            await self.revocations.check(principal)
        if info.request_type in CONTINUING and self.services.sessions.enabled:
            # one GET: the session's content and playback, so the rules judge it again
            await attach_session(ctx, principal)
        if dry_run_by_claim and principal.claims.get(self.server.dry_run_claim or "") is not True:
            raise _dry_run_refused(f"the token's {self.server.dry_run_claim} claim is not true")
        stages.enter("authorize")
        await self.host.authorize(ctx, principal)
        stages.enter("select_policy")
        policy = await self.host.select_policy(ctx, principal)
        if policy is None:
            raise ProxyError(Reason.NO_MATCHING_POLICY, "no policy matches this request")
        ctx.policy = policy
        stages.enter("authorize_policy")
        await self.host.authorize_policy(ctx, principal, policy)
        stages.enter("select_backends")
        names = await self.host.select_backends(ctx, principal, policy)
        if not names:
            raise ProxyError(
                Reason.BACKEND_NOT_CONFIGURED, f"policy {policy.name!r} names no backend"
            )
        if ctx.request.dry_run:
            return self._dry_run_result(ctx, info, policy, names)
        stages.enter("issue")
        backend, vendor_license = await self.dispatcher.issue(ctx, principal, policy, names)
        ctx.backend = backend.name
        return LicenseResult(
            license=vendor_license.license,
            content_type=vendor_license.content_type or LICENSE_CONTENT_TYPES[info.drm_system],
            drm_system=info.drm_system,
            request_type=info.request_type,
            request_id=ctx.request_id,
            key_ids=vendor_license.key_ids or ctx.key_ids,
            backend=backend.name,
            vendor=backend.spec.name,
            policy=policy.name,
            vendor_metadata=vendor_license.vendor_metadata,
        )

    def _dry_run_needs_claim(self, request: LicenseRequest) -> bool:
        """False when a trusted caller asks for a dry run; True when the token must carry
        ``server.dry_run_claim``; refused at once when that is not configured."""
        if not request.dry_run_gated:
            return False
        if self.server.dry_run_claim is None:
            raise _dry_run_refused("only trusted callers may")
        return True

    async def authenticate(self, ctx: RequestContext) -> Principal:
        """Step 2: the first authenticator that verifies the token; nothing passes without one."""
        principal = await self.host.authenticate(ctx)
        if principal is None:
            raise ProxyError(Reason.TOKEN_MISSING, "no access token was presented")
        ctx.principal = principal
        return principal

    def _dry_run_result(
        self, ctx: RequestContext, info: ChallengeInfo, policy: EffectivePolicy, names: list[str]
    ) -> LicenseResult:
        first = self.backends.get(names[0])
        return LicenseResult(
            license=b"",
            content_type=LICENSE_CONTENT_TYPES[info.drm_system],
            drm_system=info.drm_system,
            request_type=info.request_type,
            request_id=ctx.request_id,
            key_ids=ctx.key_ids,
            backend=names[0],
            vendor=first.spec.name if first else "",
            policy=policy.name,
            dry_run=True,
            trace=list(ctx.trace or ()),
            effective_policy=policy.to_dict(),
        )

    async def inspect_only(self, request: LicenseRequest) -> ChallengeInfo | InitDataInfo:
        """``InspectChallenge``: parse and report, issue nothing (a token is checked first
        when ``server.inspect_requires_token`` says so). Init data (pssh boxes, PlayReady
        headers, W3C keyids) is read too: :mod:`proxy.challenge.initdata`."""
        ctx = self.new_context(request, "InspectChallenge")
        stages = ctx.stages
        token = request_id_var.set(ctx.request_id)
        info: ChallengeInfo | InitDataInfo | None
        try:
            if self.server.inspect_requires_token:
                stages.enter("authenticate")
                await self.authenticate(ctx)
            stages.enter("inspect")
            info = None
            if len(request.challenge) <= self.server.challenge_limit(None):
                info = parse_init_data(request.challenge, request.drm_system)
            if info is None:
                info = await self.inspect(ctx)
        except ProxyError as error:
            stages.stop(error)
            self._count(ctx, "denied", error.reason.value)
            raise
        finally:
            stages.stop()
            stages.close(ctx)
            request_id_var.reset(token)
        self._count(ctx, "inspected", "")
        return info

    def _count(self, ctx: RequestContext, outcome: str, reason: str) -> None:
        drm = ctx.drm_system.value if ctx.drm_system else "unknown"
        transport = ctx.request.transport
        key = (transport, drm, outcome, reason)
        # prometheus-client's labels() costs microseconds; children are reused.
        counter = _REQUEST_COUNTERS.get(key)
        if counter is None:
            counter = _REQUEST_COUNTERS[key] = metrics.REQUESTS.labels(*key)
        counter.inc()
        histogram = _LATENCY_HISTOGRAMS.get(transport)
        if histogram is None:
            histogram = _LATENCY_HISTOGRAMS[transport] = metrics.REQUEST_SECONDS.labels(transport)
        histogram.observe(time.monotonic() - ctx.started)

    @staticmethod
    def _count_license(result: LicenseResult) -> None:
        """One more license issued, by the labels a vendor's bill is reconciled with."""
        key = (
            result.backend,
            result.vendor,
            result.drm_system.value,
            result.policy,
            result.request_type.value,
        )
        counter = _LICENSE_COUNTERS.get(key)
        if counter is None:
            counter = _LICENSE_COUNTERS[key] = metrics.LICENSES_ISSUED.labels(*key)
        counter.inc()


def _init_data_refusal(challenge: bytes) -> ProxyError:
    return ProxyError(
        Reason.CHALLENGE_INVALID,
        f"this is {describe_format(challenge)}, not a license challenge: the CDM "
        "makes its challenge from it (license-proxy inspect reads init data)",
    )


def _dry_run_refused(why: str) -> ProxyError:
    return ProxyError(
        Reason.REQUEST_INVALID,
        f"dry_run is not allowed for this caller: {why} (server.dry_run_claim)",
        field="dry_run",
    )


#: Every pipeline of the process (a reload briefly runs two): the in-flight gauge
#: adds theirs up when scraped instead of costing two updates per request. Worker
#: processes can't: their gauge lives in shared files a scrape only reads, so there
#: each request moves it (``acquire``).
_LIVE_PIPELINES: weakref.WeakSet[Pipeline] = weakref.WeakSet()
if not metrics.MULTIPROCESS:
    metrics.IN_FLIGHT.set_function(lambda: sum(p.in_flight for p in list(_LIVE_PIPELINES)))

_REQUEST_COUNTERS: dict[tuple[str, str, str, str], Any] = {}
_LATENCY_HISTOGRAMS: dict[str, Any] = {}
_LICENSE_COUNTERS: dict[tuple[str, str, str, str, str], Any] = {}
