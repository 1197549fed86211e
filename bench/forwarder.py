"""A bare aiohttp forwarder: the least a Python proxy in front of Axinom can do.

``python -m bench.forwarder`` serves ``POST /{widevine|playready}/AcquireLicense``
on an ephemeral loopback port and prints ``forwarding on URL``. Each request's
body goes to the same path under ``BENCH_UPSTREAM`` with the License Service
Message of ``BENCH_AXDRM_MESSAGE`` (minted once, by whoever started it) in
``X-AxDRM-Message``, through one pooled ``ClientSession``; the upstream's status,
content type and body come back as they are. No token, no rules, no policy, no
answer checks: the floor the proxy's full vendor path is compared with
(bench.sidebyside).
"""

from __future__ import annotations

import asyncio
import os
import signal
from collections.abc import AsyncIterator

import aiohttp
from aiohttp import web

from proxy import event_loop

SESSION = web.AppKey("session", aiohttp.ClientSession)
MESSAGE = web.AppKey("message", str)
UPSTREAM = web.AppKey("upstream", str)


async def forward(request: web.Request) -> web.Response:
    """Forward the challenge with the pre-minted message; answer what the upstream said."""
    headers = {
        "X-AxDRM-Message": request.app[MESSAGE],
        "Content-Type": request.headers.get("Content-Type", "application/octet-stream"),
    }
    if "SOAPAction" in request.headers:
        headers["SOAPAction"] = request.headers["SOAPAction"]
    body = await request.read()
    url = f"{request.app[UPSTREAM]}/{request.match_info['drm']}/AcquireLicense"
    async with request.app[SESSION].post(url, data=body, headers=headers) as answer:
        payload = await answer.read()
        content_type = answer.headers.get("Content-Type", "application/octet-stream")
        return web.Response(
            status=answer.status, body=payload, headers={"Content-Type": content_type}
        )


async def _session(app: web.Application) -> AsyncIterator[None]:
    # One pool for every request, with no limit below the load's connection count.
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as session:
        app[SESSION] = session
        yield


def make_app(upstream: str, message: str) -> web.Application:
    """The forwarder for ``upstream`` (a base URL) adding ``message``."""
    app = web.Application()
    app[UPSTREAM] = upstream.rstrip("/")
    app[MESSAGE] = message
    app.cleanup_ctx.append(_session)
    app.router.add_post("/{drm:widevine|playready}/AcquireLicense", forward)
    return app


async def main() -> None:
    """Serve until SIGTERM."""
    app = make_app(os.environ["BENCH_UPSTREAM"], os.environ["BENCH_AXDRM_MESSAGE"])
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    print(f"forwarding on http://127.0.0.1:{runner.addresses[0][1]}", flush=True)
    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    await stop.wait()
    await runner.cleanup()


if __name__ == "__main__":
    # The loop the proxy serves on by default (server.event_loop = "auto"), so that the
    # floor is measured on the same footing; BENCH_EVENT_LOOP=asyncio for the stdlib loop.
    event_loop.run(main(), os.environ.get("BENCH_EVENT_LOOP", "auto"))  # type: ignore[arg-type]
