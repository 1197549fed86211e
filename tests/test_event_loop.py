"""``server.event_loop``: uvloop by default where it is installed, asyncio on request."""

from __future__ import annotations

import json
import uuid

import aiohttp
import grpc
import pytest

from licenseproxy.v1 import license_proxy_pb2 as pb
from licenseproxy.v1 import license_proxy_pb2_grpc as pb_grpc
from proxy import event_loop
from proxy.builder import build_pipeline
from proxy.cli import main
from proxy.encoding import b64url_encode
from proxy.errors import ConfigError
from proxy.testing import proxy_config
from proxy.tokens import development_token
from tests.process_support import SERVING, default_toml, start, stop

KID = uuid.UUID("4060a865-8878-4267-9cbf-91ae5bae1e72").bytes
CHALLENGE = json.dumps({"kids": [b64url_encode(KID)], "type": "temporary"}).encode()


@pytest.mark.parametrize("choice", ["auto", "asyncio", "uvloop"])
async def test_the_proxy_serves_licenses_on_the_loop_it_names(tmp_path, choice):
    path = tmp_path / "proxy.toml"
    path.write_text(f'[server]\nevent_loop = "{choice}"\n\n' + default_toml())
    process = await start(["serve", "--config", str(path)])
    try:
        assert process.stderr is not None
        line = await process.stderr.readline()
        while not SERVING.search(line):
            assert line, "the proxy exited before listening"
            line = await process.stderr.readline()
        expected = "asyncio" if choice == "asyncio" else "uvloop"
        assert line.rstrip().endswith(f" on {expected}".encode()), line
        grpc_port, http_port = (int(port) for port in SERVING.search(line).groups())
        token = development_token(ttl=600)
        async with grpc.aio.insecure_channel(f"127.0.0.1:{grpc_port}") as channel:
            answer = await pb_grpc.LicenseProxyServiceStub(channel).AcquireLicense(
                pb.AcquireLicenseRequest(
                    drm_system=pb.DRM_SYSTEM_CLEARKEY, challenge=CHALLENGE, token=token
                )
            )
        assert json.loads(answer.license)["keys"][0]["kid"] == b64url_encode(KID)
        async with (
            aiohttp.ClientSession() as http,
            http.post(
                f"http://127.0.0.1:{http_port}/v1/licenses/clearkey",
                data=CHALLENGE,
                headers={"Authorization": f"Bearer {token}"},
            ) as response,
        ):
            assert response.status == 200
            assert json.loads(await response.read())["keys"][0]["kid"] == b64url_encode(KID)
    finally:
        await stop(process)


def test_uvloop_asked_for_but_not_installed_fails_at_start(monkeypatch):
    monkeypatch.setattr(event_loop, "uvloop_available", lambda: False)
    doc = proxy_config()
    doc.setdefault("server", {})["event_loop"] = "uvloop"
    with pytest.raises(ConfigError) as caught:
        build_pipeline(doc)
    assert any(path == "server.event_loop" for path, _ in caught.value.errors)
    # auto falls back to the standard library's loop instead
    assert event_loop.loop_name("auto") == "asyncio"


def test_check_config_says_which_loop_will_serve(tmp_path, capsys):
    path = tmp_path / "proxy.toml"
    path.write_text(default_toml())
    assert main(["check-config", str(path)]) == 0
    assert "server.event_loop: auto (uvloop here)" in capsys.readouterr().out
