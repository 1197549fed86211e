"""Start, drain on SIGTERM, reload on SIGHUP, and refuse a taken port."""

from __future__ import annotations

import asyncio
import os
import re
import signal
import socket
import sys
import uuid
from pathlib import Path

import aiohttp
import pytest

from proxy import hookimpl
from proxy.builder import build_pipeline
from proxy.errors import ConfigError
from proxy.model import LicenseRequest
from proxy.server import ProxyApp
from proxy.testing import embedded_default_text, proxy_config
from tests.conftest import clearkey_request
from tests.plugins.slow import Hold

KID = uuid.UUID("4060a865-8878-4267-9cbf-91ae5bae1e72").bytes
ROOT = Path(__file__).resolve().parent.parent
LISTENING = re.compile(rb"serving gRPC on [\d.]+:(\d+) and HTTP on [\d.]+:(\d+)")


async def _post(url: str, token: str, hold: float = 0) -> int:
    async with (
        aiohttp.ClientSession() as session,
        session.post(
            f"{url}/v1/licenses/clearkey",
            data=clearkey_request(KID),
            headers={"Authorization": f"Bearer {token}", "x-hold": str(hold)},
        ) as response,
    ):
        await response.read()
        return response.status


async def test_sigterm_drains_in_flight_requests_then_exits(tmp_path, dev_token):
    config = tmp_path / "proxy.toml"
    config.write_text(
        embedded_default_text() + '\n[plugins]\nmodules = ["tests.plugins.slow:Hold"]\n'
    )
    command = Path(sys.executable).with_name("license-proxy")
    process = await asyncio.create_subprocess_exec(
        str(command),
        "serve",
        "--config",
        str(config),
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        line = b""
        while not (match := LISTENING.search(line)):
            line = await asyncio.wait_for(process.stderr.readline(), 30)
            assert line, "the proxy exited before listening"
        url = f"http://127.0.0.1:{int(match[2])}"
        token = dev_token()
        assert await _post(url, token) == 200
        in_flight = asyncio.create_task(_post(url, token, hold=1.0))
        await asyncio.sleep(0.3)  # let the request reach the plugin
        process.send_signal(signal.SIGTERM)
        assert await in_flight == 200  # finished during the drain
        assert await asyncio.wait_for(process.wait(), 30) == 0
        with pytest.raises(aiohttp.ClientConnectionError):
            await _post(url, token)
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()


async def test_stop_reports_not_serving_and_finishes_in_flight_work(dev_token):
    pipeline = build_pipeline(proxy_config({"server": {"shutdown_delay": 0.3}}), plugins=[Hold()])
    app = ProxyApp(pipeline)
    await app.start()
    url = f"http://127.0.0.1:{app.http_port}"
    in_flight = asyncio.create_task(_post(url, dev_token(), hold=0.5))
    await asyncio.sleep(0.1)
    stopping = asyncio.create_task(app.stop())
    await asyncio.sleep(0.05)
    async with aiohttp.ClientSession() as session, session.get(f"{url}/readyz") as response:
        assert response.status == 503
    assert await in_flight == 200
    await stopping


async def test_reload_swaps_the_pipeline_and_keeps_serving(dev_token):
    state = {"config": proxy_config()}
    app = ProxyApp(build_pipeline(state["config"]), rebuild=lambda: build_pipeline(state["config"]))
    await app.start()
    try:
        url = f"http://127.0.0.1:{app.http_port}"
        assert await _post(url, dev_token()) == 200
        state["config"] = proxy_config(
            {
                "policies": [
                    {
                        "name": "default",
                        "backends": ["clearkey"],
                        "match": {"claims": {"tier": "gold"}},
                    }
                ]
            }
        )
        assert await app.reload()
        assert await _post(url, dev_token()) == 403  # the new policy needs a gold tier
        state["config"] = proxy_config({"server": {"http": {"port": "not a port"}}})
        assert not await app.reload()  # a broken config is refused; the last one serves on
        assert await _post(url, dev_token({"tier": "gold"})) == 200
    finally:
        await app.stop()


async def test_a_taken_port_fails_the_start():
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        app = ProxyApp(build_pipeline(proxy_config({"server": {"http": {"port": port}}})))
        with pytest.raises(OSError):
            await app.start()
        app = ProxyApp(build_pipeline(proxy_config({"server": {"grpc": {"port": port}}})))
        with pytest.raises(OSError):
            await app.start()


def test_reload_config_errors_are_config_errors():
    with pytest.raises(ConfigError):
        build_pipeline(proxy_config({"server": {"http": {"port": -1}}}))


async def test_a_cancelled_request_is_observed_as_denied(dev_token):
    denied = []

    class Observer:
        @hookimpl
        def proxy_license_denied(self, ctx, error):
            denied.append(error.reason.value)

    pipeline = build_pipeline(proxy_config(), plugins=[Hold(), Observer()])
    request = LicenseRequest(
        challenge=clearkey_request(KID),
        token=dev_token(),
        headers={"x-hold": "5"},
        request_id="cancel-me",
    )
    task = asyncio.create_task(pipeline.acquire(request))
    await asyncio.sleep(0.1)  # inside the held authorize step
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert denied == ["UPSTREAM_TIMEOUT"]
    assert pipeline.in_flight == 0


async def test_a_cancelled_request_gives_its_single_use_token_back(dev_token):
    class HoldAfterAuthorize:
        @hookimpl(tryfirst=True)
        async def proxy_select_policy(self, ctx, principal):
            seconds = float(ctx.request.headers.get("x-hold", "0") or 0)
            await asyncio.sleep(seconds)

    config = proxy_config({"access": {"replay": {"max_uses": 1}}})
    pipeline = build_pipeline(config, plugins=[HoldAfterAuthorize()])
    token = dev_token()
    held = LicenseRequest(
        challenge=clearkey_request(KID), token=token, headers={"x-hold": "5"}, request_id="a"
    )
    task = asyncio.create_task(pipeline.acquire(held))
    await asyncio.sleep(0.1)  # the token's one use is spent; the election is waiting
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    again = LicenseRequest(challenge=clearkey_request(KID), token=token, request_id="b")
    assert (await pipeline.acquire(again)).license


async def test_reload_applies_cors_and_names_what_needs_a_restart(caplog):
    state = {"config": proxy_config({"server": {"cors": {"allow_origins": ["https://a.example"]}}})}
    app = ProxyApp(build_pipeline(state["config"]), rebuild=lambda: build_pipeline(state["config"]))
    await app.start()
    try:
        url = f"http://127.0.0.1:{app.http_port}/v1/licenses/clearkey"

        async def allowed(origin: str) -> str | None:
            async with (
                aiohttp.ClientSession() as session,
                session.options(url, headers={"Origin": origin}) as response,
            ):
                return response.headers.get("Access-Control-Allow-Origin")

        assert await allowed("https://b.example") is None
        state["config"] = proxy_config(
            {
                "server": {
                    "cors": {"allow_origins": ["https://b.example"]},
                    "max_token_bytes": 4096,
                }
            }
        )
        assert await app.reload()
        assert await allowed("https://b.example") == "https://b.example"
        assert "server.max_token_bytes" in caplog.text
    finally:
        await app.stop()


async def test_quick_reloads_run_one_at_a_time_and_close_every_old_pipeline():
    app = ProxyApp(build_pipeline(proxy_config()), rebuild=lambda: build_pipeline(proxy_config()))
    await app.start()
    try:
        results = await asyncio.gather(app.reload(), app.reload(), app.reload())
        assert results == [True, True, True]
        # only the serving pipeline still has background work open
        assert list(app._pipeline_stacks) == [id(app.pipeline)]
    finally:
        await app.stop()


class _FailsToStart:
    """A plugin whose background work can't start (say, a pool it can't open)."""

    @hookimpl
    def proxy_configure(self, config):
        async def broken():
            raise RuntimeError("cannot open the pool")
            yield

        config.add_cleanup_ctx(broken)


async def test_a_reload_runs_off_the_loop_and_any_failure_keeps_the_running_config(
    caplog, dev_token
):
    import threading

    outcomes = []

    def rebuild():
        outcomes.append(threading.current_thread() is threading.main_thread())
        step = len(outcomes)
        if step == 1:
            raise RuntimeError("a plugin import blew up")
        if step == 2:
            return build_pipeline(proxy_config(), plugins=[_FailsToStart()])
        return build_pipeline(proxy_config())

    original = build_pipeline(proxy_config())
    app = ProxyApp(original, rebuild=rebuild, access_log=False)
    await app.start()
    try:
        url = f"http://127.0.0.1:{app.http_port}"
        assert await app.reload() is False  # the build raised something other than ConfigError
        assert "reload failed; the running configuration stays" in caplog.text
        assert await app.reload() is False  # the new pipeline could not start
        assert "failed to start the new pipeline" in caplog.text
        assert app.pipeline is original
        assert await _post(url, dev_token()) == 200
        assert list(app._pipeline_stacks) == [id(original)]
        assert await app.reload() is True
        assert app.pipeline is not original
        assert await _post(url, dev_token()) == 200
        assert outcomes == [False, False, False]  # every build ran in a worker thread
    finally:
        await app.stop()
