"""Configuration: validated completely at start, every mistake reported with its key path."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from proxy.builder import build_pipeline
from proxy.cli import main
from proxy.config import parse_duration
from proxy.errors import ConfigError
from proxy.secrets import resolve_secret
from proxy.testing import proxy_config, toml_config

THREE_MISTAKES = """
[server.http]
port = "eighty"

[[auth.issuers]]
issuer = "https://sts.example/"
audience = ["typo: the key is audiences"]
audiences = ["license-proxy"]
algorithms = ["HS256"]

[[auth.issuers.keys]]
secret = "hex:00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff"

[[policies]]
name = "default"
backends = ["nowhere"]

[backends.clearkey]
vendor = "clearkey"
key_seed = "hex:00112233445566778899aabbccddeeff"
"""


def test_check_config_prints_every_mistake_with_its_key_path(tmp_path, capsys):
    path = tmp_path / "proxy.toml"
    path.write_text(THREE_MISTAKES)
    assert main(["check-config", str(path)]) == 1
    err = capsys.readouterr().err
    assert "3 error(s)" in err
    assert "server.http.port:" in err
    assert "auth.issuers[0].audience: unknown key" in err
    assert "policies[0].backends[0]: no backend named 'nowhere'" in err


def test_check_config_as_a_command(tmp_path):
    path = tmp_path / "proxy.toml"
    path.write_text(THREE_MISTAKES)
    command = Path(sys.executable).with_name("license-proxy")
    done = subprocess.run(
        [str(command), "check-config", str(path)], capture_output=True, text=True, check=False
    )
    assert done.returncode != 0
    assert done.stderr.count("\n  ") == 3


def test_check_config_accepts_a_good_file(tmp_path, capsys):
    path = tmp_path / "proxy.toml"
    path.write_text(
        THREE_MISTAKES.replace('"eighty"', "8080")
        .replace('audience = ["typo: the key is audiences"]\n', "")
        .replace("nowhere", "clearkey")
    )
    assert main(["check-config", str(path)]) == 0
    assert "OK" in capsys.readouterr().out


def test_a_toml_syntax_error_names_the_file(tmp_path, capsys):
    path = tmp_path / "broken.toml"
    path.write_text("[server\nport = 1")
    assert main(["check-config", str(path)]) == 1
    assert "not valid TOML" in capsys.readouterr().err


def test_unknown_top_level_section():
    with pytest.raises(ConfigError) as raised:
        build_pipeline(proxy_config({"acess": {"ip": {}}}))
    assert raised.value.errors == [
        ("acess", "unknown key (no loaded plugin reads it; did you mean 'access'?)")
    ]


def test_a_missing_environment_secret_names_the_variable_not_a_value(monkeypatch):
    monkeypatch.delenv("NO_SUCH_SECRET", raising=False)
    config = proxy_config({"backends": {"clearkey": {"key_seed": "env:NO_SUCH_SECRET"}}})
    with pytest.raises(ConfigError) as raised:
        build_pipeline(config)
    [(path, message)] = raised.value.errors
    assert path == "backends.clearkey.key_seed"
    assert "NO_SUCH_SECRET" in message


def test_secrets_resolve_from_env_and_files_relative_to_the_config(tmp_path, monkeypatch):
    monkeypatch.setenv("SEED_HEX", "00" * 16)
    assert resolve_secret("env:SEED_HEX").value == b"00" * 16
    (tmp_path / "seed.bin").write_bytes(b"\x01" * 16)
    assert resolve_secret("file:seed.bin", tmp_path).value == b"\x01" * 16
    assert repr(resolve_secret("file:seed.bin", tmp_path)) == "Secret('file:seed.bin')"
    assert resolve_secret("hex:0aff").value == b"\n\xff"
    with pytest.raises(ValueError, match="not valid hex"):
        resolve_secret("hex:zz")


def test_the_development_key_is_refused_on_a_public_listener():
    config = proxy_config({"server": {"http": {"host": "0.0.0.0"}}})
    with pytest.raises(ConfigError) as raised:
        build_pipeline(config)
    assert ("auth.issuers[0].development") in [p for p, _ in raised.value.errors]


def test_a_weak_hmac_secret_is_refused_at_start():
    config = proxy_config()
    config["auth"]["issuers"][0]["keys"][0]["secret"] = "hex:" + "ab" * 32
    build_pipeline(config)  # 32 bytes: enough for HS256
    config["auth"]["issuers"][0]["keys"][0]["secret"] = "hex:" + "ab" * 31
    with pytest.raises(ConfigError) as raised:
        build_pipeline(config)
    [(path, message)] = raised.value.errors
    assert path.startswith("auth.issuers[0].keys[0]") and "HS256 needs at least 32" in message


@pytest.mark.parametrize(
    ("text", "seconds"),
    [(30, 30.0), ("45", 45.0), ("500ms", 0.5), ("2h", 7200.0), ("1h30m", 5400.0), ("7d", 604800.0)],
)
def test_durations(text, seconds):
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["-1", "soon", "1x", True, "inf"])
def test_bad_durations(text):
    with pytest.raises(ValueError):
        parse_duration(text)


def test_toml_config_helper_defaults_to_ephemeral_ports():
    raw = toml_config("[server.http]\nhost = '127.0.0.1'\n")
    assert raw["server"]["http"]["port"] == 0
    assert raw["server"]["grpc"]["port"] == 0


def test_plugins_command_lists_builtins_and_their_hooks(capsys):
    assert main(["plugins"]) == 0
    out = capsys.readouterr().out
    assert "token  (drm-license-proxy" in out
    assert "    proxy_authenticate" in out
    assert "vendor_clearkey" in out


def test_token_command_prints_the_token_alone(capsys):
    assert main(["token", "sub=alice", 'groups=["a","b"]']) == 0
    out = capsys.readouterr().out
    assert out.count("\n") == 1 and out.count(".") == 2
    import jwt

    claims = jwt.decode(out.strip(), options={"verify_signature": False})
    assert claims["sub"] == "alice" and claims["groups"] == ["a", "b"]
    assert claims["iss"] == "license-proxy-dev" and claims["aud"] == "license-proxy"


def test_a_partial_challenge_limit_table_keeps_the_other_defaults():
    pipeline = build_pipeline(proxy_config({"server": {"max_challenge_bytes": {"widevine": 1000}}}))
    limits = pipeline.server.max_challenge_bytes
    assert limits["widevine"] == 1000
    assert limits["playready"] == 128 * 1024


@pytest.mark.parametrize(
    ("overrides", "path"),
    [
        (
            {"server": {"max_challenge_bytes": {"clearkey": 0}}},
            "server.max_challenge_bytes.clearkey",
        ),
        ({"log": {"level": "verbose"}}, "log.level"),
        (
            {
                "policies": [
                    {
                        "name": "default",
                        "backends": ["clearkey"],
                        "license": {"license_duration": "400ms"},
                    }
                ]
            },
            "policies[0].license.license_duration",
        ),
    ],
)
def test_values_that_would_break_at_run_time_fail_at_start(overrides, path):
    with pytest.raises(ConfigError) as raised:
        build_pipeline(proxy_config(overrides))
    assert path in [p for p, _ in raised.value.errors]
