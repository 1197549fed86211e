"""The shipped examples stay true: the in-house plugin's own tests pass, and the example
configs pass check-config."""

from __future__ import annotations

import base64
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
