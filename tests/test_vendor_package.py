"""A vendor is one package plus one entry point: an in-house vendor, installed beside the
project with no edit to it, appears in ``license-proxy plugins``, in ``--sandbox``, in the
rendering check and in the vendor test matrix.

The package (``tests/data/acmevendor``, a made-up "Acme DRM") is copied into a
temporary folder with an ``acmevendor-1.0.dist-info`` holding its ``license_proxy``
entry point, and that folder goes on ``sys.path`` and ``PYTHONPATH``: what ``pip
install`` leaves behind.
"""

from __future__ import annotations

import asyncio
import os
import re
import shutil
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import aiohttp
import pytest

from proxy.builder import build_pipeline, installed_vendors
from proxy.errors import ConfigError
from proxy.model import DrmSystem
from proxy.testing import embedded_default_text, proxy_config
from proxy.testing.emulator import license_facts
from proxy.testing.sandbox import Sandbox
from proxy.tokens import development_token
from tests.test_vendor_integration import widevine_challenge
from tests.test_vendor_sandbox import SERVING

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = Path(__file__).parent / "data" / "acmevendor" / "acmevendor"
ENTRY_POINTS = "[license_proxy]\nvendor_acme = acmevendor:AcmeVendorPlugin\n"


@pytest.fixture
def acme(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """``acmevendor`` installed in a folder of its own, for this process and its children."""
    site = tmp_path / "site"
    shutil.copytree(PACKAGE, site / "acmevendor")
    info = site / "acmevendor-1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: acmevendor\nVersion: 1.0\n")
    (info / "entry_points.txt").write_text(ENTRY_POINTS)
    monkeypatch.syspath_prepend(str(site))
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(filter(None, [str(site), str(ROOT)])))
    yield site
    for name in [m for m in sys.modules if m.split(".")[0] == "acmevendor"]:
        del sys.modules[name]


def run(*args: str) -> subprocess.CompletedProcess[str]:
    """A child process with this one's environment (``PYTHONPATH`` included)."""
    return subprocess.run(
        [sys.executable, *args], cwd=ROOT, capture_output=True, text=True, timeout=300
    )


def test_the_entry_point_registers_the_vendor_and_its_sandbox(acme):
    assert "acme" not in installed_vendors(load_entrypoints=False).specs
    spec = installed_vendors().specs["acme"]
    assert spec.drm_systems == {DrmSystem.WIDEVINE}
    assert spec.sandbox is not None
    assert spec.renderings == {}  # it declares no rendering
    assert "acme" in Sandbox().vendors


def test_it_is_listed_by_license_proxy_plugins(acme):
    done = run("-m", "proxy.cli", "plugins")
    assert done.returncode == 0, done.stderr
    assert "vendor_acme  (acmevendor (acmevendor:AcmeVendorPlugin))" in done.stdout
    assert re.search(r"^\s+acme  \(widevine; sandbox\): Acme DRM", done.stdout, re.MULTILINE)


def acme_config(**backend: object) -> dict:
    """The embedded default plus an ``acme`` backend and a policy asking for HDCP on HD."""
    config = proxy_config()
    config["backends"]["acme"] = {"vendor": "acme", "url": "http://127.0.0.1:9/license"}
    config["backends"]["acme"] |= {"key": "hex:" + "11" * 32, **backend}
    config["policies"].append(
        {
            "name": "hd",
            "priority": 10,
            "match": {"claims": {"vendor": "acme"}},
            "backends": ["acme"],
            "tracks": {"HD": {"hdcp": "V2"}},
        }
    )
    return config


def test_what_it_declares_no_rendering_for_fails_the_start_with_the_key_path(acme):
    with pytest.raises(ConfigError) as raised:
        build_pipeline(acme_config())
    errors = dict(raised.value.errors)
    message = errors["policies[1].tracks.HD.hdcp"]
    assert "backend 'acme' (acme) for widevine can't render this" in message
    assert "declares no rendering" in message
    # The operator's statement that the Acme account enforces the policy lets it start.
    assert build_pipeline(acme_config(policy_enforced_by_vendor=True)).backends["acme"]


async def test_it_joins_serve_sandbox(acme, tmp_path):
    config = tmp_path / "sandbox.toml"
    config.write_text(embedded_default_text())
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "proxy.cli",
        "serve",
        "--sandbox",
        "--config",
        str(config),
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
        assert re.search(rb"^ +acme +http://127\.0\.0\.1:\d+$", seen, re.MULTILINE), seen
        token = development_token({"sub": "dev", "vendor": "acme"})
        async with (
            aiohttp.ClientSession() as http,
            http.post(
                f"http://127.0.0.1:{http_port}/v1/licenses/widevine",
                data=widevine_challenge(),
                params={"content_id": "movie-1"},
                headers={"Authorization": f"Bearer {token}"},
            ) as response,
        ):
            body = await response.read()
        assert response.status == 200, body
        assert license_facts("widevine", body) == {"vendor": "acme", "content_id": "movie-1"}
    finally:
        process.send_signal(signal.SIGTERM)
        async with asyncio.timeout(30):
            code = await process.wait()
    assert code == 0


def test_it_runs_in_the_vendor_test_matrix(acme):
    matrix = ("tests/test_vendor_integration.py", "tests/test_vendor_properties.py")
    done = run("-m", "pytest", "-q", "-rA", "-k", "acme or properties", *matrix)
    assert done.returncode == 0, done.stdout + done.stderr
    passed = set(re.findall(r"^PASSED (\S+)", done.stdout, re.MULTILINE))
    assert {
        "tests/test_vendor_integration.py::test_widevine_license_over_both_transports[acme]",
        "tests/test_vendor_integration.py::"
        "test_every_vendor_serves_each_of_its_drms_over_both_transports[acme-widevine]",
        "tests/test_vendor_integration.py::"
        "test_service_certificate_is_forwarded_once_then_cached[acme]",
        "tests/test_vendor_integration.py::"
        "test_a_widevine_renewal_is_served_through_every_vendor[acme]",
    } <= passed, done.stdout
    assert (
        "tests/test_vendor_properties.py::test_any_answer_is_a_license_or_a_typed_upstream_error"
        in passed
    )


def test_the_meta_test_names_what_the_package_still_lacks(acme):
    """Installed vendors are held to the built-ins' rules: docs and a conformance test in
    this project are what an outside package can't bring, so the meta-test names them."""
    done = run("-m", "pytest", "-q", "-k", "acme", "tests/test_vendor_meta.py")
    assert done.returncode == 1, done.stdout + done.stderr
    assert "a '## acme' section in docs/vendors.md" in done.stdout
    assert "a conformance test module tests/test_vendor_acme.py" in done.stdout
    assert "an emulator" not in done.stdout
