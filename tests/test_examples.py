"""The shipped examples stay true: the in-house plugin's own tests pass, and the example
configs pass check-config."""

from __future__ import annotations

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


@pytest.mark.parametrize("config", sorted(EXAMPLES.glob("*.toml")), ids=lambda p: p.name)
def test_example_configs_are_valid(config, capsys):
    assert main(["check-config", str(config)]) == 0, capsys.readouterr().err
