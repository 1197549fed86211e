"""The configuration of license sessions, retries and playbacks: every mistake named by its key
path, at start and by ``license-proxy check-config``."""

from __future__ import annotations

from importlib import resources

import pytest

from proxy.cli import main

DEFAULT = resources.files("proxy").joinpath("default.toml").read_text()
GOOD = """
[access.replay]
retry_window = "30s"

[access.concurrency]
limit = 3
per_content = 1
mode = "stop_oldest"
heartbeat_timeout = "6m"
cmcd = true
"""


def _check(tmp_path, text: str, grace: str | None = None) -> int:
    base = DEFAULT
    if grace is not None:
        base = base.replace("development = true", f"development = true\nrenewal_grace = {grace}")
        assert "renewal_grace" in base
    path = tmp_path / "proxy.toml"
    path.write_text(f"{base}\n{text}")
    return main(["check-config", str(path)])


def test_every_new_key_passes_check_config(tmp_path, capsys):
    code = _check(tmp_path, GOOD, grace='"4h"')
    assert code == 0, capsys.readouterr()


@pytest.mark.parametrize(
    ("text", "grace", "path", "says"),
    [
        (GOOD.replace('"stop_oldest"', '"newest"'), None, "access.concurrency.mode", "block_new"),
        (
            GOOD.replace("per_content = 1", "per_content = 0"),
            None,
            "access.concurrency.per_content",
            "greater than or equal to 1",
        ),
        (GOOD.replace('"6m"', "0"), None, "access.concurrency.heartbeat_timeout", "more than 0"),
        (GOOD + "interval = 60\n", None, "access.concurrency", "replaces interval and grace"),
        (GOOD.replace('"30s"', '"10m"'), None, "access.replay.retry_window", "between 0 and 300"),
        (GOOD, '"2d"', "auth.issuers[0].renewal_grace", "between 0 and 86400"),
        (GOOD.replace("cmcd = true", "cmcd = 3"), None, "access.concurrency.cmcd", "boolean"),
    ],
)
def test_mistakes_are_named_by_their_key_path(tmp_path, capsys, text, grace, path, says):
    code = _check(tmp_path, text, grace)
    captured = capsys.readouterr()
    output = captured.out + captured.err
    assert code != 0
    line = next((line for line in output.splitlines() if line.strip().startswith(path)), None)
    assert line is not None, output
    assert says in line
