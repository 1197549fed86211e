"""``license-proxy serve --sandbox`` as a developer runs it: a real process, every registered
vendor reachable."""

from __future__ import annotations

import asyncio
import os
import re
import signal
import sys
from pathlib import Path

import aiohttp
import pytest

from proxy.model import DrmSystem
from proxy.testing import embedded_default_text
from proxy.testing.emulator import license_facts
from proxy.tokens import development_token
from tests import vendor_matrix
from tests.test_vendor_integration import challenge_for

SERVING = re.compile(rb"serving gRPC on [\d.]+:(\d+) and HTTP on [\d.]+:(\d+)")


@pytest.fixture
def config_file(tmp_path: Path) -> Path:
    """The embedded default on ephemeral loopback ports."""
    text = embedded_default_text()
    path = tmp_path / "sandbox.toml"
    path.write_text(text, encoding="utf-8")
    return path


async def test_serve_sandbox_answers_for_every_vendor_then_stops_on_sigterm(config_file):
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "proxy.cli",
        "serve",
        "--sandbox",
        "--config",
        str(config_file),
        stderr=asyncio.subprocess.PIPE,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    try:
        seen = b""
        http_port = None
        async with asyncio.timeout(30):
            while http_port is None:
                line = await process.stderr.readline()
                assert line, seen.decode()
                seen += line
                match = SERVING.search(line)
                if match:
                    http_port = int(match.group(2))
        emulated = vendor_matrix.emulated()
        served: dict[str, DrmSystem] = {}
        for vendor, drm in vendor_matrix.sandboxed():
            served.setdefault(vendor, drm)  # Widevine first, where the vendor serves it
        for vendor in served:
            listed = rb"^ +" + vendor.encode() + rb" +(http://127\.0\.0\.1:\d+|local)"
            assert re.search(listed, seen, re.MULTILINE), seen.decode()
        async with aiohttp.ClientSession() as http:
            for vendor, drm in served.items():
                token = development_token({"sub": "dev", "vendor": vendor})
                challenge, content_id = challenge_for(drm)
                async with http.post(
                    f"http://127.0.0.1:{http_port}/v1/licenses/{drm.value}",
                    data=challenge,
                    params={"content_id": content_id},
                    headers={"Authorization": f"Bearer {token}"},
                ) as response:
                    body = await response.read()
                    assert response.status == 200, body
                    if vendor in emulated:
                        assert license_facts(drm.value, body)["vendor"] == vendor
                    else:
                        assert body  # a local vendor's own license
    finally:
        process.send_signal(signal.SIGTERM)
        async with asyncio.timeout(30):
            code = await process.wait()
    assert code == 0
