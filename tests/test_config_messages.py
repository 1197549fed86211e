"""``check-config`` as a new user meets it: every mistake at once, in words, with a hint."""

from __future__ import annotations

import pytest

from proxy.builder import build_pipeline
from proxy.cli import main
from proxy.errors import ConfigError
from proxy.testing import proxy_config
from tests.process_support import default_toml

MANY_MISTAKES = """
[server]
shutdown_grce = 3

[server.grpc]
port = 9000

[server.http]
port = 9000

[plugins]
modules = ["no_such_module_for_the_test"]

[log]
level = "LOUD"

[acess.ip]
allow = ["10.0.0.0/8"]

[[policies]]
name = "default"
backends = ["clearkey"]

[policies.license]
can_play = "yes"

[backends.clearkey]
vendor = "clearkey"
key_seed = "hex:663a0280bde66da657b5e665f79e30b28b112734242ee10544c61eb26fd7b761"
"""


def _errors(config: dict) -> dict[str, str]:
    with pytest.raises(ConfigError) as refused:
        build_pipeline(config)
    return dict(refused.value.errors)


def test_check_config_lists_every_mistake_even_after_a_plugin_fails_to_load(tmp_path, capsys):
    path = tmp_path / "proxy.toml"
    path.write_text(MANY_MISTAKES, encoding="utf-8")
    assert main(["check-config", str(path)]) == 1
    lines = capsys.readouterr().err.splitlines()
    assert lines[0] == f"{path}: 6 error(s)"
    listed = dict(line.strip().split(": ", 1) for line in lines[1:])
    assert listed["plugins.modules[0]"].startswith("cannot load 'no_such_module_for_the_test'")
    assert listed["server.shutdown_grce"] == "unknown key (did you mean 'shutdown_grace'?)"
    assert listed["server.http.port"].startswith("the HTTP listener can't share port 9000")
    assert listed["log.level"] == "must be one of DEBUG, INFO, WARNING, ERROR, CRITICAL"
    assert listed["policies[0].license.can_play"].startswith("must be true or false")
    assert listed["acess"] == (
        "unknown key (no loaded plugin reads it; one that failed to load may; "
        "did you mean 'access'?)"
    )


@pytest.mark.parametrize(
    ("grpc_host", "http_host"),
    [("127.0.0.1", "127.0.0.1"), ("0.0.0.0", "127.0.0.1"), ("127.0.0.1", "::")],
)
def test_grpc_and_http_on_one_address_and_port_are_refused(grpc_host, http_host):
    config = proxy_config(
        {"server": {"grpc": {"host": grpc_host, "port": 7000}, "http": {"host": http_host}}}
    )
    config["server"]["http"]["port"] = 7000
    errors = _errors(config)
    assert "server.http.port" in errors


def test_the_admin_listener_on_the_http_port_is_refused():
    config = proxy_config({"server": {"http": {"port": 7001}}, "admin": {"port": 7001}})
    errors = _errors(config)
    assert errors["admin.port"].startswith("the admin listener can't share port 7001")


def test_grpc_and_http_on_one_port_of_two_addresses_are_fine():
    config = proxy_config(
        {
            "server": {
                "grpc": {"host": "127.0.0.1", "port": 7000},
                "http": {"host": "127.0.0.2", "port": 7000},
            }
        }
    )
    assert build_pipeline(config).server.http.port == 7000


@pytest.mark.parametrize("value", ["yes", "true", 1, "off"])
def test_a_boolean_setting_takes_a_toml_boolean_only(value):
    config = proxy_config()
    config["policies"][0]["license"]["can_play"] = value
    assert _errors(config) == {
        "policies[0].license.can_play": (
            "must be true or false (a TOML boolean, not a string or a number)"
        )
    }


def test_a_choice_is_named_not_a_regular_expression():
    errors = _errors(proxy_config({"log": {"level": "LOUD", "format": "xml"}}))
    assert errors["log.level"] == "must be one of DEBUG, INFO, WARNING, ERROR, CRITICAL"
    assert errors["log.format"] == "must be one of text, json"


@pytest.mark.parametrize(
    ("overrides", "path", "hint"),
    [
        (
            {"server": {"cors": {"allow_origin": ["*"]}}},
            "server.cors.allow_origin",
            "allow_origins",
        ),
        ({"log": {"levl": "INFO"}}, "log.levl", "level"),
        (
            {"backends": {"clearkey": {"key_sed": "hex:00"}}},
            "backends.clearkey.key_sed",
            "key_seed",
        ),
        ({"acces": {"replay": {}}}, "acces", "access"),
        ({"access": {"rate_limt": {}}}, "access.rate_limt", "rate_limit"),
    ],
)
def test_an_unknown_key_suggests_the_key_it_resembles(overrides, path, hint):
    errors = _errors(proxy_config(overrides))
    assert f"did you mean {hint!r}?" in errors[path]


def test_an_unknown_key_like_nothing_gets_no_suggestion():
    errors = _errors(proxy_config({"log": {"zzzzzz": 1}}))
    assert errors["log.zzzzzz"] == "unknown key"


def test_the_embedded_default_still_checks_clean(tmp_path, capsys):
    path = tmp_path / "proxy.toml"
    path.write_text(default_toml(), encoding="utf-8")
    assert main(["check-config", str(path)]) == 0
    assert "OK" in capsys.readouterr().out
