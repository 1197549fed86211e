"""SIGHUP under ``serve --sandbox`` reloads the config (it was silently ignored)."""

from __future__ import annotations

import asyncio
import signal
import uuid

import aiohttp

from proxy.tokens import development_token
from tests.conftest import clearkey_request
from tests.process_support import default_toml, listening, start, stop

KID = uuid.UUID("4060a865-8878-4267-9cbf-91ae5bae1e72").bytes


async def _status(http: aiohttp.ClientSession, url: str) -> int:
    async with http.post(
        f"{url}/v1/licenses/clearkey",
        data=clearkey_request(KID),
        headers={"Authorization": f"Bearer {development_token({'sub': 'dev'})}"},
    ) as response:
        await response.read()
        return response.status


async def _line_with(process: asyncio.subprocess.Process, text: str) -> str:
    async with asyncio.timeout(30):
        while True:
            line = (await process.stderr.readline()).decode()
            assert line, f"the proxy exited before logging {text!r}"
            if text in line:
                return line


async def test_sighup_under_the_sandbox_reloads_the_config(tmp_path):
    config = tmp_path / "proxy.toml"
    config.write_text(default_toml(), encoding="utf-8")
    process = await start(["serve", "--sandbox", "--config", str(config)])
    try:
        _, http_port = await listening(process)
        url = f"http://127.0.0.1:{http_port}"
        async with aiohttp.ClientSession() as http:
            assert await _status(http, url) == 200
            # The default policy now asks for a claim the development token lacks.
            config.write_text(
                default_toml().replace(
                    'backends = ["clearkey"]',
                    'backends = ["clearkey"]\nmatch = {claims = {tier = "gold"}}',
                ),
                encoding="utf-8",
            )
            process.send_signal(signal.SIGHUP)
            await _line_with(process, "configuration reloaded")
            assert await _status(http, url) == 403
        process.send_signal(signal.SIGTERM)
        assert await asyncio.wait_for(process.wait(), 30) == 0
    finally:
        await stop(process)


async def test_a_reload_without_a_config_to_read_is_refused_with_a_log_line(caplog):
    from proxy.builder import build_pipeline
    from proxy.server import ProxyApp
    from proxy.testing import proxy_config

    app = ProxyApp(build_pipeline(proxy_config()))
    with caplog.at_level("WARNING", logger="proxy.server"):
        assert not await app.reload()
    assert "reload refused" in caplog.text
