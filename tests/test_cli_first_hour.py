"""A new user's first hour with the command: flags, init, token, version, pipes, help."""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import socket
import tomllib
import uuid

import jwt
import pytest

from proxy.cli import main, make_parser
from proxy.cli_init import STARTER, STARTER_VARIABLES
from tests.conftest import clearkey_request
from tests.process_support import LICENSE_PROXY, ROOT, default_toml, listening, start, stop

KID = uuid.UUID("4060a865-8878-4267-9cbf-91ae5bae1e72").bytes


def test_version(capsys):
    with pytest.raises(SystemExit) as done:
        main(["--version"])
    assert done.value.code == 0
    out = capsys.readouterr().out
    assert out.startswith("license-proxy ")
    assert out.split()[1][0].isdigit()


def test_every_option_and_command_has_help_text():
    parser = make_parser()
    missing = []

    def walk(p: argparse.ArgumentParser, where: str) -> None:
        for action in p._actions:
            if isinstance(action, argparse._SubParsersAction):
                for choice in action._choices_actions:
                    if not choice.help:
                        missing.append(f"{where} {choice.dest}")
                for name, child in action.choices.items():
                    walk(child, f"{where} {name}")
            elif not isinstance(action, argparse._HelpAction) and not action.help:
                missing.append(f"{where} {'/'.join(action.option_strings) or action.dest}")

    walk(parser, "license-proxy")
    assert missing == []


@pytest.fixture
def taken_port():
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        yield taken.getsockname()[1]


async def test_listener_flags_override_the_config_file(tmp_path, taken_port):
    config = tmp_path / "proxy.toml"
    config.write_text(
        default_toml(ports=False)
        .replace("port = 50051", f"port = {taken_port}")
        .replace("port = 8080", f"port = {taken_port}"),
        encoding="utf-8",
    )
    process = await start(
        [
            "serve",
            "--config",
            str(config),
            "--host",
            "127.0.0.1",
            "--grpc-port",
            "0",
            "--http-port",
            "0",
            "--admin-port",
            "0",
        ]
    )
    try:
        grpc_port, http_port = await listening(process)
        assert taken_port not in (grpc_port, http_port)
        reader, writer = await asyncio.open_connection("127.0.0.1", http_port)
        writer.write(b"GET /healthz HTTP/1.1\r\nHost: p\r\nConnection: close\r\n\r\n")
        assert b" 200 " in await reader.readline()
        writer.close()
        process.send_signal(signal.SIGTERM)
        assert await asyncio.wait_for(process.wait(), 30) == 0
    finally:
        await stop(process)


@pytest.mark.parametrize(
    ("taken", "listener", "key", "flag"),
    [
        ("http", "HTTP", "server.http.port", "--http-port"),
        ("grpc", "gRPC", "server.grpc.port", "--grpc-port"),
    ],
)
async def test_a_port_in_use_names_the_listener_and_what_moves_it(
    taken_port, taken, listener, key, flag
):
    other = "grpc" if taken == "http" else "http"
    process = await start(
        ["serve", f"--{taken}-port", str(taken_port), f"--{other}-port", "0", "--admin-port", "0"]
    )
    try:
        code = await asyncio.wait_for(process.wait(), 30)
        err = (await process.stderr.read()).decode()
    finally:
        await stop(process)
    assert code == 1
    last = err.strip().splitlines()[-1]
    assert f"the {listener} listener cannot bind 127.0.0.1:{taken_port}" in last
    assert key in last and flag in last
    assert "Traceback" not in err


def test_init_writes_a_production_starter_that_checks_clean(tmp_path, monkeypatch, capsys):
    for name in STARTER_VARIABLES:
        monkeypatch.setenv(name, "c2VjcmV0LXNlY3JldC1zZWNyZXQtc2VjcmV0LXNlY3I=")
    path = tmp_path / "license-proxy.toml"
    assert main(["init", str(path)]) == 0
    text = path.read_text(encoding="utf-8")
    assert text == STARTER
    document = tomllib.loads(text)
    assert not any(issuer.get("development") for issuer in document["auth"]["issuers"])
    assert "hex:" not in text and "base64:" not in text  # secrets are references only
    assert document["server"]["grpc"]["host"] == "0.0.0.0"
    assert main(["check-config", str(path)]) == 0, capsys.readouterr().err
    # An existing file is kept unless --force.
    path.write_text("# mine\n", encoding="utf-8")
    assert main(["init", str(path)]) == 1
    assert path.read_text(encoding="utf-8") == "# mine\n"
    assert main(["init", str(path), "--force"]) == 0
    assert path.read_text(encoding="utf-8") == STARTER


def test_init_to_standard_output(capsys):
    assert main(["init", "-"]) == 0
    assert capsys.readouterr().out == STARTER


def test_token_flags_are_honoured_with_the_development_key(capsys):
    argv = ["token", "--iss", "https://sts.test/", "--aud", "players", "--kid", "k7", "sub=x"]
    assert main(argv) == 0
    token = capsys.readouterr().out.strip()
    assert jwt.get_unverified_header(token)["kid"] == "k7"
    claims = jwt.decode(token, options={"verify_signature": False})
    assert (claims["iss"], claims["aud"], claims["sub"]) == ("https://sts.test/", "players", "x")


@pytest.mark.parametrize(
    ("argv", "said"),
    [
        (["token", "--alg", "none"], "--alg none"),
        (["token", "--alg", "NONE", "--key", "hex:00112233445566778899aabbccddeeff"], "none"),
        (["token", "--alg", "RS256"], "needs --key"),
        (["token", "--alg", "XX999", "--key", "hex:00112233445566778899aabbccddeeff"], "XX999"),
    ],
)
def test_token_flags_that_cant_be_honoured_are_refused(capsys, argv, said):
    assert main(argv) == 2
    out, err = capsys.readouterr()
    assert out == ""
    assert said in err


def test_a_closed_pipe_ends_the_plugins_listing_quietly():
    read_end, write_end = os.pipe()
    os.close(read_end)  # the reader (`head -1`) is already gone
    try:
        import subprocess

        done = subprocess.run(
            [str(LICENSE_PROXY), "plugins"],
            stdout=write_end,
            stderr=subprocess.PIPE,
            cwd=ROOT,
            timeout=60,
            check=False,
        )
    finally:
        os.close(write_end)
    assert b"Traceback" not in done.stderr
    assert b"BrokenPipeError" not in done.stderr


async def test_can_play_false_on_clearkey_is_the_operators_policy_not_the_vendor(
    proxy_factory, http, dev_token
):
    from proxy.testing import proxy_config

    config = proxy_config()
    config["policies"][0]["license"]["can_play"] = False
    proxy = await proxy_factory(config)
    async with http.post(
        f"{proxy.http_url}/v1/licenses/clearkey",
        data=clearkey_request(KID),
        headers={"Authorization": f"Bearer {dev_token()}"},
    ) as response:
        problem = json.loads(await response.read())
    assert response.status == 403
    assert problem["reason"] == "NOT_ENTITLED"
    assert "policy 'default'" in problem["detail"]
    assert "vendor" not in problem["title"].lower()
    assert problem["metadata"] == {"policy": "default", "cause": "can_play"}
