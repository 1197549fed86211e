"""Test helpers for plugin authors, loaded by pytest through the ``pytest11`` entry point.

Fixtures:

- ``proxy_factory``: ``await proxy_factory(config, plugins=[...])`` builds a
  proxy from just the config and plugins a test names and runs it on loopback
  (ephemeral ports); it is stopped when the test ends.
- ``dev_token``: ``dev_token({"sub": "alice"})`` mints a token the embedded
  default accepts.
- ``fake_clock``: a :class:`FakeClock` to hand to ``proxy_factory(clock=...)``.
- ``vendor_sandbox``: every registered vendor's emulator on loopback, with a config routing
  a proxy to them (see ``docs/vendors.md``).
- ``redis_server``: a real ``redis-server`` on a free loopback port for the
  whole session (:class:`proxy.testing.redis.RedisServer`), emptied before each
  test that asks for it; skipped when the binary is not installed.
- ``redis_cluster`` / ``redis_sentinel``: a real Redis Cluster (3 masters, a
  replica each) and a real Sentinel group (master, replica, 3 sentinels) from
  :mod:`proxy.testing.fleet`, started once per session, healthy again and
  emptied before each test; ``store_target("valkey-cluster")`` gets any target
  of :data:`proxy.testing.fleet.TARGETS` the same way.

Adapter authors: :func:`vendor_call` builds the ``VendorCall`` an adapter's
``build_request``/``parse_response`` take, for unit tests with no network.

Config helpers: :func:`proxy_config` merges a test's overrides into the
embedded default; :func:`toml_config` reads a TOML string.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

import pytest

from proxy.testing.adapters import vendor_call
from proxy.testing.clock import FakeClock
from proxy.testing.configs import embedded_default_text, proxy_config, toml_config
from proxy.testing.running import ProxyFactory, RunningProxy, start_proxy
from proxy.tokens import development_token

try:
    import pytest_asyncio
except ImportError:  # pragma: no cover - the test extra installs it
    pytest_asyncio = None  # type: ignore[assignment]


@pytest.fixture
def dev_token() -> Callable[..., str]:
    """Mint tokens the embedded default accepts: ``dev_token({"sub": "alice"}, ttl=60)``."""
    return development_token


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


if pytest_asyncio is not None:

    @pytest_asyncio.fixture
    async def vendor_sandbox() -> AsyncIterator[Any]:
        """Every registered vendor's emulator on loopback with fresh keys
        (a :class:`proxy.testing.sandbox.Sandbox`; an installed in-house vendor joins).

        ``vendor_sandbox.config(proxy_config())`` adds one backend per vendor
        and a policy electing each by the token claim ``vendor``;
        ``vendor_sandbox["axinom"].fault.set("error", status=503)`` makes one
        misbehave; ``vendor_sandbox["axinom"].state.received`` logs what it got.
        """
        from proxy.testing.sandbox import Sandbox

        sandbox = await Sandbox().start()
        try:
            yield sandbox
        finally:
            await sandbox.stop()


@pytest.fixture(scope="session")
def _redis_fleet() -> Iterator[Any]:
    from proxy.testing.fleet import Fleet

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
    """A running :class:`proxy.testing.redis.RedisServer` shared by the session, emptied for this test."""
    _redis_session.restore()  # a test may have stopped or paused it
    _redis_session.flush()
    return _redis_session


@pytest.fixture
def store_target(_redis_fleet: Any) -> Callable[[str], Any]:
    """``store_target("redis-cluster")``: that target of :data:`proxy.testing.fleet.TARGETS`,
    started once per session, healthy and empty for this test; skips when not installed."""

    def get(target: str) -> Any:
        if not _redis_fleet.installed(target):
            pytest.skip(f"{target.partition('-')[0]}-server is not installed (make redis-server)")
        return _redis_fleet.get(target)

    return get


@pytest.fixture
def redis_cluster(store_target: Callable[[str], Any]) -> Any:
    """The session's :class:`proxy.testing.fleet.LocalCluster`, healthy and empty for this test."""
    return store_target("redis-cluster")


@pytest.fixture
def redis_sentinel(store_target: Callable[[str], Any]) -> Any:
    """The session's :class:`proxy.testing.fleet.SentinelGroup`, healthy and empty for this test."""
    return store_target("redis-sentinel")


__all__ = [
    "FakeClock",
    "ProxyFactory",
    "RunningProxy",
    "development_token",
    "embedded_default_text",
    "proxy_config",
    "start_proxy",
    "toml_config",
    "vendor_call",
]
