"""The whole pipeline against a bare server, over HTTP and gRPC, in one run.

``python -m bench.pipeline [--seconds S] [--concurrency N]`` starts the bare
baseline (bench.baseline) and the proxy on its embedded default (HS256 token,
ClearKey backend; access log off) as subprocesses, drives each with the same
ClearKey license request, and prints req/s, latency and server CPU per request
side by side, with the proxy's CPU overhead per request over the bare handler.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import tempfile
import uuid
from pathlib import Path

import aiohttp
import grpc

from bench.harness import (
    ROOT,
    LoadResult,
    console_script,
    grpc_call,
    http_call,
    measure,
    python_command,
    start_server,
    stop_server,
    table,
)
from licenseproxy.v1 import license_proxy_pb2 as pb
from licenseproxy.v1 import license_proxy_pb2_grpc as pb_grpc
from proxy.encoding import b64url_encode
from proxy.tokens import development_token

KID = uuid.UUID("4060a865-8878-4267-9cbf-91ae5bae1e72").bytes
CHALLENGE = json.dumps({"kids": [b64url_encode(KID)], "type": "temporary"}).encode()


def proxy_config_file(folder: Path) -> Path:
    """The embedded default with ephemeral ports and no access log."""
    text = (ROOT / "proxy" / "default.toml").read_text()
    text = text.replace("port = 50051", "port = 0").replace("port = 8080", "port = 0")
    text = text.replace("port = 8081", "port = 0")
    path = folder / "bench.toml"
    path.write_text(text + "\n[log]\naccess = false\n")
    return path


async def run_target(
    label: str, argv: list[str], args: argparse.Namespace, env: dict[str, str] | None = None
) -> list[LoadResult]:
    """HTTP then gRPC load against one server subprocess: saturated, then at ``--rate``."""
    server = await start_server(argv, env)
    token = development_token(ttl=86400)
    results = []
    try:
        connector = aiohttp.TCPConnector(limit=args.concurrency)
        async with aiohttp.ClientSession(connector=connector) as session:
            call = http_call(
                session,
                f"{server.http_url}/v1/licenses/clearkey",
                CHALLENGE,
                {"Authorization": f"Bearer {token}"},
            )
            for rate in (None, args.rate):
                results.append(
                    await measure(
                        f"HTTP {label}" + (f" @ {rate:.0f}/s" if rate else " saturated"),
                        server,
                        call,
                        concurrency=args.concurrency,
                        seconds=args.seconds,
                        warmup=args.warmup,
                        rate=rate,
                    )
                )
        async with grpc.aio.insecure_channel(server.grpc_target) as channel:
            stub = pb_grpc.LicenseProxyServiceStub(channel)
            request = pb.AcquireLicenseRequest(
                drm_system=pb.DRM_SYSTEM_CLEARKEY, challenge=CHALLENGE, token=token
            )
            for rate in (None, args.rate):
                results.append(
                    await measure(
                        f"gRPC {label}" + (f" @ {rate:.0f}/s" if rate else " saturated"),
                        server,
                        grpc_call(stub.AcquireLicense, request),
                        concurrency=args.concurrency,
                        seconds=args.seconds,
                        warmup=args.warmup,
                        rate=rate,
                    )
                )
    finally:
        await stop_server(server)
    return results


async def run(args: argparse.Namespace) -> str:
    """Bare baseline, then the proxy; return the Markdown report."""
    with tempfile.TemporaryDirectory() as folder:
        config = proxy_config_file(Path(folder))
        bare = await run_target("bare", python_command("-m", "bench.baseline"), args)
        serve = [console_script("license-proxy"), "serve", "--config", str(config)]
        before = None
        if args.before:
            # Another revision's checkout, run on this venv's dependencies: a before/after
            # pair measured in one run.
            before = await run_target("proxy before", serve, args, {"PYTHONPATH": args.before})
        proxy = await run_target("proxy", serve, args)
    order = []
    for i in range(4):
        order += [bare[i], *([before[i]] if before else []), proxy[i]]
    lines = [table(order), ""]
    for i, what in enumerate(
        (
            "HTTP saturated",
            f"HTTP at {args.rate:.0f}/s",
            "gRPC saturated",
            f"gRPC at {args.rate:.0f}/s",
        )
    ):
        b, p = bare[i], proxy[i]
        lines.append(
            f"- {what}: the pipeline adds {p.cpu_us_per_request - b.cpu_us_per_request:.0f} us "
            f"of server CPU per request ({p.cpu_us_per_request / b.cpu_us_per_request:.2f}x the bare "
            f"handler); throughput {p.rps / b.rps:.2f}x."
        )
        if before:
            old = before[i]
            lines.append(
                f"  before: {old.cpu_us_per_request - b.cpu_us_per_request:.0f} us over the bare "
                f"handler; now minus before: "
                f"{p.cpu_us_per_request - old.cpu_us_per_request:+.0f} us per request."
            )
    return "\n".join(lines)


def parser() -> argparse.ArgumentParser:
    """Command-line options."""
    p = argparse.ArgumentParser(prog="python -m bench.pipeline", description=__doc__)
    p.add_argument("--seconds", type=float, default=5.0, help="measured seconds per run")
    p.add_argument("--warmup", type=float, default=1.0)
    p.add_argument("--concurrency", type=int, default=32)
    p.add_argument(
        "--rate",
        type=float,
        default=1000.0,
        help="requests/s of the fixed-rate runs (same load for both servers)",
    )
    p.add_argument(
        "--before",
        metavar="CHECKOUT",
        help="also run the proxy from another revision's checkout (with generated code), "
        "on this venv's dependencies, for a before/after comparison in one run",
    )
    return p


def main(argv: list[str] | None = None) -> None:
    """Run and print."""
    print(asyncio.run(run(parser().parse_args(argv))))


if __name__ == "__main__":
    main()
