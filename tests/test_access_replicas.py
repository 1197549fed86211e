"""Replicas sharing one Redis: real ``license-proxy serve`` processes, each with its own config.

A token used on one replica is refused on the other; a burst of new sessions
spread over both admits exactly the limit; killing Redis gives each replica its
configured answer, and restarting Redis brings them back without a restart.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import signal
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import grpc
import pytest
import pytest_asyncio

from licenseproxy.v1 import license_proxy_pb2_grpc
from proxy.builder import embedded_default
from tests.access_support import Answer, grpc_call, http_call

COMMAND = Path(sys.executable).parent / "license-proxy"
SERVING = re.compile(r"serving gRPC on 127\.0\.0\.1:(\d+) and HTTP on 127\.0\.0\.1:(\d+)")
START_TIMEOUT = 60.0


def replica_config(redis_url: str, *, fail_open: bool) -> str:
    """A config file for one replica: the embedded default's issuer and backend, plus Redis."""
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
timeout = "250ms"

[access.replay]
fail_open = {flag}

[access.concurrency]
limit = 3
fail_open = {flag}
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


@pytest_asyncio.fixture
async def replicas(tmp_path, redis_server) -> AsyncIterator[dict[str, Replica]]:
    """Two fail-closed replicas and one fail-open replica on the test's Redis."""
    started: dict[str, Replica] = {}
    for name, fail_open in (("a", False), ("b", False), ("open", True)):
        config = tmp_path / f"{name}.toml"
        config.write_text(replica_config(redis_server.url, fail_open=fail_open))
        started[name] = Replica(name, config, tmp_path / f"{name}.log")
    try:
        for replica in started.values():
            await replica.start()
        for replica in started.values():
            await replica.wait_serving()
        yield started
    finally:
        for replica in started.values():
            with contextlib.suppress(ProcessLookupError):
                await replica.stop()


async def _until_ok(call, attempts: int = 300) -> Answer:
    answer = Answer(False)
    for _ in range(attempts):
        answer = await call()
        if answer.ok:
            return answer
        await asyncio.sleep(0.02)
    return answer


async def test_replicas_share_one_redis(replicas, redis_server, http, dev_token):
    a, b, fail_open = replicas["a"], replicas["b"], replicas["open"]

    # a token used on one replica is refused on the other, over either transport
    token = dev_token({"sub": "replay-check"})
    assert (await grpc_call(a, token)).ok
    assert (await grpc_call(b, token)).reason == "TOKEN_REPLAYED"
    assert (await http_call(b, http, token)).reason == "TOKEN_REPLAYED"

    # a burst of new sessions for one subject, spread over both: exactly the limit gets in
    async def new_session(i: int) -> Answer:
        replica = (a, b)[i % 2]
        token = dev_token({"sub": "household-7"})
        if i % 4 < 2:
            return await grpc_call(replica, token, content_id=f"title-{i}")
        return await http_call(replica, http, token, content_id=f"title-{i}")

    answers = await asyncio.gather(*(new_session(i) for i in range(24)))
    assert sum(answer.ok for answer in answers) == 3
    assert {a.reason for a in answers if not a.ok} == {"CONCURRENCY_LIMIT_EXCEEDED"}

    # Redis dies: the fail-closed replicas refuse, the fail-open one admits
    redis_server.kill()
    for replica in (a, b):
        down = await grpc_call(replica, dev_token({"sub": "during-outage"}), content_id="x")
        assert (down.reason, down.status) == ("STATE_UNAVAILABLE", grpc.StatusCode.UNAVAILABLE)
        over_http = await http_call(replica, http, dev_token({"sub": "during-outage"}))
        assert (over_http.reason, over_http.status) == ("STATE_UNAVAILABLE", 503)
    assert (await grpc_call(fail_open, dev_token({"sub": "during-outage"}))).ok

    # Redis comes back (empty): both replicas recover without a restart
    redis_server.start()
    for replica in (a, b):
        answer = await _until_ok(
            lambda r=replica: grpc_call(r, dev_token({"sub": "after-outage"}), content_id="y")
        )
        assert answer.ok, answer
    again = dev_token({"sub": "after-outage-2"})
    assert (await http_call(b, http, again)).ok
    assert (await http_call(a, http, again)).reason == "TOKEN_REPLAYED"
