"""``license-proxy serve --sandbox`` as a developer runs it: a real process, every vendor reachable."""

from __future__ import annotations

import asyncio
import os
import re
import signal
import sys
import uuid
from importlib import resources
from pathlib import Path

import aiohttp
import pytest

from proxy.challenge import samples
from proxy.emulators import license_facts
from proxy.tokens import development_token

KID = uuid.UUID("0a8b1c2d-3e4f-4a5b-8c6d-7e8f9a0b1c2d").bytes
SERVING = re.compile(rb"serving gRPC on [\d.]+:(\d+) and HTTP on [\d.]+:(\d+)")


@pytest.fixture
def config_file(tmp_path: Path) -> Path:
    """The embedded default on ephemeral loopback ports."""
    text = resources.files("proxy").joinpath("default.toml").read_text(encoding="utf-8")
    text = text.replace("port = 50051", "port = 0").replace("port = 8080", "port = 0")
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
        for vendor in ("axinom", "verimatrix", "azure", "widevine_cloud"):
            assert vendor.encode() in seen
        challenge = samples.widevine_license_request(key_ids=[KID], content_id=b"movie-1")
        async with aiohttp.ClientSession() as http:
            for vendor in ("axinom", "verimatrix", "azure", "widevine_cloud"):
                token = development_token({"sub": "dev", "vendor": vendor})
                async with http.post(
                    f"http://127.0.0.1:{http_port}/v1/licenses/widevine",
                    data=challenge,
                    params={"content_id": "movie-1"},
                    headers={"Authorization": f"Bearer {token}"},
                ) as response:
                    body = await response.read()
                    assert response.status == 200, body
                    assert license_facts("widevine", body)["vendor"] == vendor
    finally:
        process.send_signal(signal.SIGTERM)
        async with asyncio.timeout(30):
            code = await process.wait()
    assert code == 0
