"""Test helpers for plugin authors, loaded by pytest through the ``pytest11`` entry point.

Fixtures:

- ``proxy_factory``: ``await proxy_factory(config, plugins=[...])`` builds a
  proxy from just the config and plugins a test names and runs it on loopback
  (ephemeral ports); it is stopped when the test ends.
- ``dev_token``: ``dev_token({"sub": "alice"})`` mints a token the embedded
  default accepts.
- ``fake_clock``: a :class:`FakeClock` to hand to ``proxy_factory(clock=...)``.
- ``vendor_sandbox``: every vendor emulator on loopback, with a config routing
  a proxy to them (see ``docs/vendors.md``).
- ``redis_server``: a real ``redis-server`` on a free loopback port for the
  whole session (:class:`proxy.redisproc.RedisServer`), emptied before each
  test that asks for it; skipped when the binary is not installed.
- ``redis_cluster`` / ``redis_sentinel``: a real Redis Cluster (3 masters, a
  replica each) and a real Sentinel group (master, replica, 3 sentinels) from
  :mod:`proxy.redisfleet`, started once per session, healthy again and emptied
  before each test; ``store_target("valkey-cluster")`` gets any target of
  :data:`proxy.redisfleet.TARGETS` the same way.

Adapter authors: :func:`vendor_call` builds the ``VendorCall`` an adapter's
``build_request``/``parse_response`` take, for unit tests with no network.

Config helpers: :func:`proxy_config` merges a test's overrides into the
embedded default; :func:`toml_config` reads a TOML string.
"""

from __future__ import annotations

import copy
import tomllib
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import grpc
import pytest

from proxy.builder import build_pipeline, embedded_default
from proxy.services import Clock, Services

try:
    import pytest_asyncio
except ImportError:  # pragma: no cover - the test extra installs it
    pytest_asyncio = None  # type: ignore[assignment]


class FakeClock(Clock):
    """A clock the test moves by hand: ``clock.advance(30)``."""

    def __init__(self, start: float = 1_800_000_000.0) -> None:
        self.now = start
        self.mono = 10_000.0

    def time(self) -> float:
        """The fake wall time."""
        return self.now

    def monotonic(self) -> float:
        """The fake monotonic time."""
        return self.mono

    def advance(self, seconds: float) -> None:
        """Move both clocks forward."""
        self.now += seconds
        self.mono += seconds


def _merge(base: dict[str, Any], overrides: dict[str, Any]) -> dict[str, Any]:
    for key, value in overrides.items():
        if value is None:
            base.pop(key, None)
        elif isinstance(value, dict) and isinstance(base.get(key), dict):
            _merge(base[key], value)
        else:
            base[key] = copy.deepcopy(value)
    return base


def proxy_config(
    overrides: dict[str, Any] | None = None, *, base: dict[str, Any] | None = None
) -> dict[str, Any]:
    """The embedded default (or ``base``) with ``overrides`` merged in and loopback ports 0.

    Tables merge key by key; any other value (lists included) replaces; a
    value of None removes the key.
    """
    config = copy.deepcopy(base if base is not None else embedded_default())
    config = _merge(config, {"server": {"grpc": {"port": 0}, "http": {"port": 0}}})
    return _merge(config, overrides or {})


def toml_config(text: str) -> dict[str, Any]:
    """Parse a TOML config written inline in a test, with loopback ports 0 unless it sets them."""
    raw = tomllib.loads(text)
    server = raw.setdefault("server", {})
    for listener in ("grpc", "http"):
        server.setdefault(listener, {}).setdefault("port", 0)
    return raw


@dataclass
class RunningProxy:
    """A proxy serving on loopback for a test."""

    app: Any
    """The :class:`proxy.server.ProxyApp` serving the test."""
    _channels: list[grpc.aio.Channel] = field(default_factory=list)

    @property
    def pipeline(self) -> Any:
        """The pipeline requests go to."""
        return self.app.pipeline

    @property
    def grpc_target(self) -> str:
        """``host:port`` of the gRPC listener."""
        return f"127.0.0.1:{self.app.grpc_port}"

    @property
    def http_url(self) -> str:
        """``http://host:port`` of the HTTP bridge."""
        return f"http://127.0.0.1:{self.app.http_port}"

    def channel(self) -> grpc.aio.Channel:
        """A gRPC channel to the proxy, closed when the proxy stops."""
        channel = grpc.aio.insecure_channel(self.grpc_target)
        self._channels.append(channel)
        return channel

    def stub(self) -> Any:
        """A ``LicenseProxyServiceStub`` on a fresh channel."""
        from licenseproxy.v1 import license_proxy_pb2_grpc

        return license_proxy_pb2_grpc.LicenseProxyServiceStub(self.channel())

    async def stop(self) -> None:
        """Close test channels and stop the proxy."""
        for channel in self._channels:
            await channel.close()
        self._channels.clear()
        await self.app.stop()


async def start_proxy(
    config: dict[str, Any] | None = None,
    *,
    plugins: Iterable[Any] = (),
    load_entrypoints: bool = True,
    clock: Clock | None = None,
    services: Services | None = None,
    base_dir: Path | None = None,
) -> RunningProxy:
    """Build a pipeline from ``config`` (default: the embedded default on ports 0) and serve it."""
    from proxy.server import ProxyApp

    raw = config if config is not None else proxy_config()
    services = services or Services()
    if clock is not None:
        services.clock = clock
    pipeline = build_pipeline(
        raw,
        base_dir=base_dir,
        plugins=plugins,
        load_entrypoints=load_entrypoints,
        services=services,
    )
    app = ProxyApp(pipeline)
    await app.start()
    return RunningProxy(app)


ProxyFactory = Callable[..., Awaitable[RunningProxy]]


def _dev_token(
    claims: dict[str, Any] | None = None, *, ttl: int = 3600, now: float | None = None
) -> str:
    from plugins.token.mint import development_token

    return development_token(claims, ttl=ttl, now=now)


@pytest.fixture
def dev_token() -> Callable[..., str]:
    """Mint tokens the embedded default accepts: ``dev_token({"sub": "alice"}, ttl=60)``."""
    return _dev_token


@pytest.fixture
def fake_clock() -> FakeClock:
    """A clock the test advances by hand."""
    return FakeClock()


if pytest_asyncio is not None:

    @pytest_asyncio.fixture
    async def proxy_factory() -> AsyncIterator[ProxyFactory]:
        """Start proxies on loopback; every one is stopped when the test ends."""
        running: list[RunningProxy] = []

        async def factory(config: dict[str, Any] | None = None, **kwargs: Any) -> RunningProxy:
            proxy = await start_proxy(config, **kwargs)
            running.append(proxy)
            return proxy

        try:
            yield factory
        finally:
            for proxy in reversed(running):
                await proxy.stop()


def vendor_call(
    challenge: Any,
    policy: Any,
    *,
    principal: Any = None,
    backend: str = "test",
    services: Services | None = None,
    **request: Any,
) -> Any:
    """A :class:`~proxy.vendors.VendorCall` for unit-testing an adapter with no network.

    ``challenge`` is a :class:`~proxy.model.ChallengeInfo`, ``policy`` an
    :class:`~proxy.policy.EffectivePolicy`; ``request`` sets
    :class:`~proxy.model.LicenseRequest` fields (``content_id``, ``client``,
    ``metadata``...).
    """
    from proxy.model import LicenseRequest, Principal, RequestContext
    from proxy.vendors import VendorCall

    principal = principal or Principal(subject="alice", issuer="test", claims={"sub": "alice"})
    license_request = LicenseRequest(challenge=challenge.payload, request_id="req-1", **request)
    ctx = RequestContext(
        request=license_request,
        services=services or Services(),
        request_id="req-1",
        challenge=challenge,
        principal=principal,
        policy=policy,
    )
    return VendorCall(ctx, challenge, principal, policy, backend)


if pytest_asyncio is not None:

    @pytest_asyncio.fixture
    async def vendor_sandbox() -> AsyncIterator[Any]:
        """Every vendor emulator on loopback with fresh keys (a :class:`proxy.emulators.sandbox.Sandbox`).

        ``vendor_sandbox.config(proxy_config())`` adds one backend per vendor
        and a policy electing each by the token claim ``vendor``;
        ``vendor_sandbox["axinom"].fault.set("error", status=503)`` makes one
        misbehave; ``vendor_sandbox["axinom"].state.received`` logs what it got.
        """
        from proxy.emulators.sandbox import Sandbox

        sandbox = await Sandbox().start()
        try:
            yield sandbox
        finally:
            await sandbox.stop()


@pytest.fixture(scope="session")
def _redis_fleet() -> Iterator[Any]:
    from proxy.redisfleet import Fleet

    fleet = Fleet()
    try:
        yield fleet
    finally:
        fleet.stop()


@pytest.fixture(scope="session")
def _redis_session(_redis_fleet: Any) -> Any:
    if not _redis_fleet.installed("redis"):
        pytest.skip("redis-server is not installed (make redis-server installs it)")
    return _redis_fleet.get("redis")


@pytest.fixture
def redis_server(_redis_session: Any) -> Any:
    """A running :class:`proxy.redisproc.RedisServer` shared by the session, emptied for this test."""
    _redis_session.restore()  # a test may have stopped or paused it
    _redis_session.flush()
    return _redis_session


@pytest.fixture
def store_target(_redis_fleet: Any) -> Callable[[str], Any]:
    """``store_target("redis-cluster")``: that target of :data:`proxy.redisfleet.TARGETS`,
    started once per session, healthy and empty for this test; skips when not installed."""

    def get(target: str) -> Any:
        if not _redis_fleet.installed(target):
            pytest.skip(f"{target.partition('-')[0]}-server is not installed (make redis-server)")
        return _redis_fleet.get(target)

    return get


@pytest.fixture
def redis_cluster(store_target: Callable[[str], Any]) -> Any:
    """The session's :class:`proxy.redisfleet.LocalCluster`, healthy and empty for this test."""
    return store_target("redis-cluster")


@pytest.fixture
def redis_sentinel(store_target: Callable[[str], Any]) -> Any:
    """The session's :class:`proxy.redisfleet.SentinelGroup`, healthy and empty for this test."""
    return store_target("redis-sentinel")
