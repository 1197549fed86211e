"""Proxy overhead in front of a vendor: HTTP and gRPC through the proxy to the Axinom
emulator, against the emulator called directly, in the same run.

Three processes on loopback: the Axinom emulator, ``license-proxy serve`` routed
to it, and this load generator. Each path gets the same Widevine challenge, the
same concurrency and the same number of requests; the figures are requests per
second and latency percentiles as the client sees them.

    .venv/bin/python -m bench.vendors [--requests 2000] [--concurrency 16]
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import os
import signal
import socket
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable
from importlib import resources
from pathlib import Path

import aiohttp
import grpc
import jwt

from licenseproxy.v1 import license_proxy_pb2 as pb
from licenseproxy.v1 import license_proxy_pb2_grpc
from proxy.challenge import samples
from proxy.tokens import development_token

KID = uuid.UUID("0a8b1c2d-3e4f-4a5b-8c6d-7e8f9a0b1c2d").bytes
COM_KEY_ID = str(uuid.uuid4())
COM_KEY = os.urandom(32)


def _emulator_main() -> None:
    """Run the Axinom emulator until killed, printing its URL on standard output."""
    from plugins.vendors.axinom import emulator as axinom
    from proxy.testing.emulator import start_emulator

    key = os.environ["BENCH_COM_KEY"]
    key_id = os.environ["BENCH_COM_KEY_ID"]

    async def run() -> None:
        emulator = await start_emulator(axinom.make_app(key_id, key))
        print(emulator.url, flush=True)
        await asyncio.Event().wait()

    asyncio.run(run())


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _config(emulator_url: str, grpc_port: int, http_port: int) -> str:
    text = resources.files("proxy").joinpath("default.toml").read_text(encoding="utf-8")
    text = text.replace("port = 50051", f"port = {grpc_port}")
    text = text.replace("port = 8080", f"port = {http_port}")
    return (
        text
        + """
[log]
level = "WARNING"
"""
        + axinom_policy_toml({"widevine": f"{emulator_url}/widevine/AcquireLicense"})
    )


def axinom_policy_toml(backend_urls: dict[str, str]) -> str:
    """A policy electing the ``axinom`` backend for tokens whose ``vendor`` claim says so,
    and that backend (this run's communication key) at ``backend_urls``."""
    com_key = base64.b64encode(COM_KEY).decode()
    urls = ", ".join(f'{drm} = "{url}"' for drm, url in backend_urls.items())
    return f"""
[[policies]]
name = "bench-axinom"
priority = 10
backends = ["axinom"]
match = {{ claims = {{ vendor = "axinom" }} }}
license = {{ can_play = true, license_duration = "1h" }}

[backends.axinom]
vendor = "axinom"
com_key_id = "{COM_KEY_ID}"
com_key = "base64:{com_key}"
urls = {{ {urls} }}
"""


async def _measure(
    name: str, send: Callable[[], Awaitable[None]], requests: int, concurrency: int
) -> dict[str, float]:
    latencies: list[float] = []
    queue = iter(range(requests))

    async def worker() -> None:
        for _ in queue:
            started = time.perf_counter()
            await send()
            latencies.append(time.perf_counter() - started)

    for _ in range(min(50, requests)):
        await send()
    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    elapsed = time.perf_counter() - started
    latencies.sort()
    figures = {
        "rps": requests / elapsed,
        "p50_ms": statistics.median(latencies) * 1000,
        "p99_ms": latencies[int(len(latencies) * 0.99) - 1] * 1000,
    }
    print(
        f"{name:<24} {figures['rps']:>8.0f} req/s   p50 {figures['p50_ms']:6.2f} ms   "
        f"p99 {figures['p99_ms']:6.2f} ms",
        flush=True,
    )
    return figures


async def _run(requests: int, concurrency: int) -> None:
    env = {
        **os.environ,
        "BENCH_COM_KEY": base64.b64encode(COM_KEY).decode(),
        "BENCH_COM_KEY_ID": COM_KEY_ID,
        "PYTHONUNBUFFERED": "1",
    }
    workdir = Path(tempfile.mkdtemp(prefix="bench-vendors-"))
    emulator = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "bench.vendors", "--emulator", env=env, stdout=asyncio.subprocess.PIPE
    )
    assert emulator.stdout is not None
    proxy = None
    try:
        async with asyncio.timeout(30):
            emulator_url = (await emulator.stdout.readline()).decode().strip()
        if not emulator_url:
            raise RuntimeError("the emulator did not start")
        config = workdir / "proxy.toml"
        grpc_port, http_port = _free_port(), _free_port()
        config.write_text(_config(emulator_url, grpc_port, http_port), encoding="utf-8")
        proxy = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "proxy.cli",
            "serve",
            "--config",
            str(config),
            env=env,
        )
        async with asyncio.timeout(30), aiohttp.ClientSession() as probe:
            while True:
                if proxy.returncode is not None:
                    raise RuntimeError("the proxy did not start")
                try:
                    async with probe.get(f"http://127.0.0.1:{http_port}/readyz") as ready:
                        if ready.status == 200:
                            break
                except aiohttp.ClientConnectionError:
                    await asyncio.sleep(0.1)
        await _bench(emulator_url, grpc_port, http_port, requests, concurrency)
    finally:
        for process in (proxy, emulator):
            if process is not None and process.returncode is None:
                process.send_signal(signal.SIGTERM)
                try:
                    async with asyncio.timeout(15):
                        await process.wait()
                except TimeoutError:
                    process.kill()


async def _bench(
    emulator_url: str, grpc_port: int, http_port: int, requests: int, concurrency: int
) -> None:
    challenge = samples.widevine_license_request(key_ids=[KID], content_id=b"movie-1")
    token = development_token({"sub": "bench", "vendor": "axinom"}, ttl=3600)
    message = jwt.encode(
        {
            "version": 1,
            "com_key_id": COM_KEY_ID,
            "message": {
                "type": "entitlement_message",
                "version": 2,
                "content_keys_source": {"inline": [{"id": str(uuid.UUID(bytes=KID))}]},
            },
        },
        COM_KEY,
        algorithm="HS256",
    )
    connector = aiohttp.TCPConnector(limit=0)
    async with aiohttp.ClientSession(connector=connector) as http:

        async def direct() -> None:
            async with http.post(
                f"{emulator_url}/widevine/AcquireLicense",
                data=challenge,
                headers={"X-AxDRM-Message": message, "Content-Type": "application/octet-stream"},
            ) as response:
                await response.read()
                assert response.status == 200, response.status

        async def via_http() -> None:
            async with http.post(
                f"http://127.0.0.1:{http_port}/v1/licenses/widevine",
                data=challenge,
                headers={"Authorization": f"Bearer {token}"},
            ) as response:
                await response.read()
                assert response.status == 200, response.status

        channel = grpc.aio.insecure_channel(f"127.0.0.1:{grpc_port}")
        stub = license_proxy_pb2_grpc.LicenseProxyServiceStub(channel)
        request = pb.AcquireLicenseRequest(
            drm_system=pb.DRM_SYSTEM_WIDEVINE, challenge=challenge, token=token
        )

        async def via_grpc() -> None:
            await stub.AcquireLicense(request, timeout=10)

        print(f"{requests} requests per path, concurrency {concurrency}")
        results = {
            "emulator direct": await _measure("emulator direct", direct, requests, concurrency),
            "proxy HTTP": await _measure("proxy HTTP -> emulator", via_http, requests, concurrency),
            "proxy gRPC": await _measure("proxy gRPC -> emulator", via_grpc, requests, concurrency),
        }
        await channel.close()
    base = results["emulator direct"]
    for path in ("proxy HTTP", "proxy gRPC"):
        added = results[path]["p50_ms"] - base["p50_ms"]
        share = results[path]["rps"] / base["rps"] * 100
        print(f"{path}: +{added:.2f} ms at p50, {share:.0f} % of direct throughput")
    print(json.dumps(results))


def main(argv: list[str] | None = None) -> None:
    """Parse arguments and run the benchmark (or, internally, the emulator process)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--emulator", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.emulator:
        _emulator_main()
        return
    asyncio.run(_run(args.requests, args.concurrency))


if __name__ == "__main__":
    main()
