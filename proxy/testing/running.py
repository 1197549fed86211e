"""A real proxy on loopback for a test: both listeners, ephemeral ports."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import grpc

from proxy.builder import build_pipeline
from proxy.clock import Clock
from proxy.services import Services
from proxy.testing.configs import proxy_config


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

    @property
    def admin_url(self) -> str:
        """``http://host:port`` of the admin listener (``[admin]`` configured)."""
        return f"http://127.0.0.1:{self.app.admin_port}"

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
