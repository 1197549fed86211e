"""``license-proxy challenge``: a well-formed synthetic challenge for every DRM, accepted by
every vendor emulator of the sandbox that serves it, and read back by ``inspect``."""

from __future__ import annotations

import base64
import json
import uuid
from pathlib import Path

import pytest

from proxy.cli import main
from proxy.cli_challenge import build_challenge
from proxy.drm import DrmSystem
from proxy.testing import proxy_config

KID = "4060a865-8878-4267-9cbf-91ae5bae1e72"
CONTENT = "movie-1"


def _challenge(tmp_path: Path, *args: str) -> bytes:
    out = tmp_path / "challenge.bin"
    assert main(["challenge", *args, "--out", str(out)]) == 0
    return out.read_bytes()


async def test_every_drm_reaches_every_sandbox_vendor_that_serves_it(
    proxy_factory, vendor_sandbox, http, dev_token, tmp_path
):
    proxy = await proxy_factory(vendor_sandbox.config(proxy_config()))
    tried = set()
    for name, backend in proxy.pipeline.backends.items():
        for drm in sorted(backend.drm_systems):
            body = _challenge(tmp_path, "--drm", drm.value, "--kid", KID, "--content-id", CONTENT)
            content_id = f"skd://{KID}" if drm is DrmSystem.FAIRPLAY else CONTENT
            claims = {"sub": "dev"} if name == "clearkey" else {"sub": "dev", "vendor": name}
            async with http.post(
                f"{proxy.http_url}/v1/licenses/{drm.value}",
                data=body,
                params={"content_id": content_id},
                headers={"Authorization": f"Bearer {dev_token(claims)}"},
            ) as response:
                assert response.status == 200, (name, drm, await response.text())
                assert response.headers["X-Request-Id"]
            tried.add(drm)
    assert tried == set(DrmSystem)


@pytest.mark.parametrize(
    ("args", "drm", "request_type"),
    [
        (["--drm", "widevine", "--kid", KID], "widevine", "new"),
        (["--drm", "widevine", "--type", "renewal"], "widevine", "renewal"),
        (["--drm", "widevine", "--type", "service-certificate"], "widevine", "service_certificate"),
        (["--drm", "playready", "--kid", KID, "--kid", str(uuid.UUID(int=7))], "playready", "new"),
        (["--drm", "fairplay", "--fairplay-framing", "form"], "fairplay", "new"),
        (["--drm", "clearkey", "--kid", KID, "--type", "release"], "clearkey", "release"),
        (["--drm", "clearkey", "--kid", KID, "--android-legacy"], "clearkey", "new"),
    ],
)
def test_inspect_reads_back_what_challenge_wrote(tmp_path, capsys, args, drm, request_type):
    body = _challenge(tmp_path, *args)
    capsys.readouterr()
    path = tmp_path / "challenge.bin"
    assert main(["inspect", "--json", "--drm", drm, str(path)]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert (summary["drm_system"], summary["request_type"]) == (drm, request_type)
    if "--kid" in args and request_type == "new":
        assert KID in summary["key_ids"]
    assert body


def test_base64_output_and_usage_errors(tmp_path, capsys):
    assert main(["challenge", "--drm", "clearkey", "--kid", KID, "--base64"]) == 0
    written = capsys.readouterr()
    assert base64.b64decode(written.out) == build_challenge(
        DrmSystem.CLEARKEY, [uuid.UUID(KID).bytes]
    )
    assert "curl --data-binary" in written.err
    for args in (
        ["--drm", "playready"],
        ["--drm", "fairplay", "--type", "service-certificate"],
        ["--drm", "widevine", "--android-legacy", "--kid", KID],
        ["--drm", "clearkey", "--kid", "not-a-key-id"],
    ):
        assert main(["challenge", *args, "--base64"]) == 2, args
        assert capsys.readouterr().err.startswith("license-proxy challenge: ")
