"""The shipped examples stay true: the in-house plugin's own tests pass, and the example
configs pass check-config."""

from __future__ import annotations

import base64
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from proxy.cli import main

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"


def test_the_inhouse_plugin_example_passes_its_own_tests():
    plugin_root = EXAMPLES / "inhouse-plugin"
    sys.path.insert(0, str(plugin_root))
    try:
        assert pytest.main(["-q", "-p", "no:cacheprovider", str(plugin_root / "tests")]) == 0
    finally:
        sys.path.remove(str(plugin_root))


def test_the_inhouse_plugin_copied_out_and_installed_passes_its_own_tests(tmp_path):
    """What a plugin team does: its own folder, installed against the proxy, its own pytest."""
    copy = tmp_path / "acme-embargo"
    shutil.copytree(EXAMPLES / "inhouse-plugin", copy, ignore=shutil.ignore_patterns("__pycache__"))
    site = tmp_path / "site"
    install = [sys.executable, "-m", "pip", "install", "-q", "--no-deps"]
    install += ["--no-build-isolation", "--no-index", "--target", str(site), str(copy)]
    subprocess.run(install, check=True, capture_output=True, timeout=300)
    env = {**os.environ, "PYTHONPATH": str(site)}
    tests = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "tests"],
        cwd=copy,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert tests.returncode == 0, tests.stdout[-4000:] + tests.stderr[-2000:]
    assert "passed" in tests.stdout
    listed = subprocess.run(
        [str(Path(sys.executable).parent / "license-proxy"), "plugins"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert listed.returncode == 0, listed.stderr
    assert "acme_embargo" in listed.stdout  # found through its entry point


@pytest.fixture
def example_secrets(monkeypatch):
    """The secrets the example configs reference, with values of the right shape."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    pem = ec.generate_private_key(ec.SECP256R1()).private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    monkeypatch.setenv("EXAMPLE_STS_SECRET", "s" * 48)
    monkeypatch.setenv("EXAMPLE_AXINOM_COM_KEY", base64.b64encode(bytes(range(32))).decode())
    monkeypatch.setenv("EXAMPLE_VERIMATRIX_KEY", pem.decode())
    monkeypatch.setenv("EXAMPLE_MKIO_TOKEN_KEY", "m" * 48)


@pytest.mark.parametrize("config", sorted(EXAMPLES.glob("*.toml")), ids=lambda p: p.name)
def test_example_configs_are_valid(config, capsys, example_secrets):
    assert main(["check-config", str(config)]) == 0, capsys.readouterr().err
