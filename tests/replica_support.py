"""Real ``license-proxy serve`` processes for the multi-replica tests, each with its own config."""

from __future__ import annotations

import asyncio
import re
import signal
import sys
from pathlib import Path

import grpc
import pytest

from licenseproxy.v1 import license_proxy_pb2_grpc
from proxy.builder import embedded_default

COMMAND = Path(sys.executable).parent / "license-proxy"
SERVING = re.compile(r"serving gRPC on 127\.0\.0\.1:(\d+) and HTTP on 127\.0\.0\.1:(\d+)")
START_TIMEOUT = 60.0
DEFAULT_RULES = """
[access.replay]
fail_open = {flag}

[access.concurrency]
limit = 3
fail_open = {flag}
"""


def replica_config(
    redis_url: str,
    *,
    fail_open: bool,
    rules: str | None = None,
    issuer_extra: str = "",
    state: str = "",
) -> str:
    """A config file for one replica: the embedded default's issuer and backend, plus Redis
    and the state rules (``rules``, TOML; default replay and a concurrency limit of 3).
    ``issuer_extra`` (TOML lines) goes into the issuer's table."""
    default = embedded_default()
    issuer = default["auth"]["issuers"][0]
    key = issuer["keys"][0]
    seed = default["backends"]["clearkey"]["key_seed"]
    flag = "true" if fail_open else "false"
    return f"""
[server.grpc]
host = "127.0.0.1"
port = 0

[server.http]
host = "127.0.0.1"
port = 0

[log]
level = "INFO"

[[auth.issuers]]
issuer = "{issuer["issuer"]}"
audiences = ["{issuer["audiences"][0]}"]
algorithms = ["HS256"]
development = true
{issuer_extra}

[[auth.issuers.keys]]
id = "{key["id"]}"
secret = "{key["secret"]}"

[[policies]]
name = "default"
backends = ["clearkey"]

[backends.clearkey]
vendor = "clearkey"
key_seed = "{seed}"

[access.state]
store = "{redis_url}"
key_prefix = "replicas:"
# Generous: a loaded 2-core CI machine must not turn a slow answer into STATE_UNAVAILABLE.
timeout = "1s"
{state}

{rules if rules is not None else DEFAULT_RULES.format(flag=flag)}
"""


class Replica:
    """One ``license-proxy serve`` process and the clients to talk to it."""

    def __init__(self, name: str, config: Path, log: Path) -> None:
        self.name = name
        self.config = config
        self.log = log
        self.process: asyncio.subprocess.Process | None = None
        self.grpc_port = 0
        self.http_port = 0
        self._channel: grpc.aio.Channel | None = None

    async def start(self) -> None:
        """Spawn the process; its log goes to a file so a full pipe never blocks it."""
        with self.log.open("wb") as log:
            self.process = await asyncio.create_subprocess_exec(
                str(COMMAND), "serve", "--config", str(self.config), stdout=log, stderr=log
            )

    async def wait_serving(self) -> None:
        """Wait for the "serving" log line and read the ports from it."""
        assert self.process is not None
        loop = asyncio.get_running_loop()
        deadline = loop.time() + START_TIMEOUT
        while loop.time() < deadline:
            text = self.log.read_text(errors="replace")
            match = SERVING.search(text)
            if match:
                self.grpc_port, self.http_port = int(match[1]), int(match[2])
                return
            if self.process.returncode is not None:
                break
            await asyncio.sleep(0.05)
        pytest.fail(f"{self.name} did not start:\n{self.log.read_text(errors='replace')[-3000:]}")

    @property
    def http_url(self) -> str:
        """The HTTP bridge's base URL."""
        return f"http://127.0.0.1:{self.http_port}"

    def stub(self) -> license_proxy_pb2_grpc.LicenseProxyServiceStub:
        """A stub on this replica's one channel."""
        if self._channel is None:
            self._channel = grpc.aio.insecure_channel(f"127.0.0.1:{self.grpc_port}")
        return license_proxy_pb2_grpc.LicenseProxyServiceStub(self._channel)

    async def stop(self) -> None:
        """SIGTERM (drain), then SIGKILL if it lingers."""
        if self._channel is not None:
            await self._channel.close()
        if self.process is None or self.process.returncode is not None:
            return
        self.process.send_signal(signal.SIGTERM)
        try:
            await asyncio.wait_for(self.process.wait(), 15)
        except TimeoutError:
            self.process.kill()
            await self.process.wait()
