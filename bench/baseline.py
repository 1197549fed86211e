"""Bare servers doing no checks: the floor the proxy's figures are compared with.

``python -m bench.baseline`` serves ``POST /v1/licenses/clearkey`` on aiohttp and
``LicenseProxyService/AcquireLicense`` on grpc.aio, each answering a fixed
license, on one loop like the proxy; it prints its ports and runs until SIGTERM.
"""

from __future__ import annotations

import asyncio
import os
import signal

import grpc
from aiohttp import web

from licenseproxy.v1 import license_proxy_pb2 as pb
from licenseproxy.v1 import license_proxy_pb2_grpc as pb_grpc
from proxy import event_loop

LICENSE = b'{"keys":[{"kty":"oct","kid":"QGCoZYh4Qmecv5GuW64ecg","k":"AAAAAAAAAAAAAAAAAAAAAA"}],"type":"temporary"}'


class BareServicer(pb_grpc.LicenseProxyServiceServicer):
    """Answers every AcquireLicense with the same license."""

    async def AcquireLicense(self, request, context):
        """A fixed answer."""
        return pb.AcquireLicenseResponse(license=LICENSE, drm_system=pb.DRM_SYSTEM_CLEARKEY)


async def bare_http(request: web.Request) -> web.Response:
    """Read the body, answer a fixed license."""
    await request.read()
    return web.Response(body=LICENSE, content_type="application/json")


async def main() -> None:
    """Serve both until SIGTERM."""
    server = grpc.aio.server()
    pb_grpc.add_LicenseProxyServiceServicer_to_server(BareServicer(), server)
    grpc_port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    app = web.Application()
    app.router.add_post("/v1/licenses/{drm}", bare_http)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    http_port = runner.addresses[0][1]
    print(f"serving gRPC on 127.0.0.1:{grpc_port} and HTTP on 127.0.0.1:{http_port}", flush=True)
    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    await stop.wait()
    await server.stop(1)
    await runner.cleanup()


if __name__ == "__main__":
    # The loop the proxy serves on by default (server.event_loop = "auto"), so that the
    # floor is measured on the same footing; BENCH_EVENT_LOOP=asyncio for the stdlib loop.
    event_loop.run(main(), os.environ.get("BENCH_EVENT_LOOP", "auto"))  # type: ignore[arg-type]
