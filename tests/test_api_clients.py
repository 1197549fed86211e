"""Client stubs generated from protos/ in Go and Node build, and talk to a running proxy.

The Go client is built with Debian's protoc-gen-go, protoc-gen-go-grpc and gRPC
sources in GOPATH mode (no module download); the Node client with ts-proto, tsc
and @grpc/grpc-js from npm. ``make test`` (the ``clients`` target) installs both
toolchains; a test skips, saying what is missing, only where they could not be.
Each client gets a license, reads the request id from the answer's headers, and
sees an INVALID_ARGUMENT with its status details.
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.access_support import KID
from tests.conftest import clearkey_request

ROOT = Path(__file__).resolve().parent.parent
PROTO = "licenseproxy/v1/license_proxy.proto"
GOOGLEAPIS = ROOT / ".tools" / "googleapis"
NODE_MODULES = ROOT / ".tools" / "node-client" / "node_modules"
GOPATH_SOURCES = Path("/usr/share/gocode")
INSTALL_HINT = "run `make clients` (make test does) to install it"


def _protoc(*args: str) -> None:
    if not (GOOGLEAPIS / "google/api/annotations.proto").exists():
        pytest.skip(f"the google/api protos are not linked in {GOOGLEAPIS}: run `make googleapis`")
    subprocess.run(
        [sys.executable, "-m", "grpc_tools.protoc", "-Iprotos", f"-I{GOOGLEAPIS}", *args, PROTO],
        cwd=ROOT,
        check=True,
        capture_output=True,
    )


def _run(command: list[str], **kwargs: Any) -> None:
    done = subprocess.run(command, capture_output=True, text=True, **kwargs)
    assert done.returncode == 0, f"{command[0]} failed:\n{done.stdout}\n{done.stderr}"


async def _client_output(command: list[str], **kwargs: Any) -> dict[str, Any]:
    """Run a built client against the proxy (asynchronously: the proxy answers on this loop)."""
    process = await asyncio.create_subprocess_exec(
        *command,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        **kwargs,
    )
    out, err = await asyncio.wait_for(process.communicate(), 60)
    assert process.returncode == 0, err.decode(errors="replace")
    return json.loads(out)


def _expect_issued(seen: dict[str, Any]) -> None:
    license_doc = json.loads(base64.b64decode(seen["license"]))
    assert license_doc["keys"][0]["kid"]  # a ClearKey license (JWK set)
    assert seen["policy"] == "default"
    # the request id of a success rides in the trailers, as an error's does
    assert seen["issued_trailer_request_id"] == [seen["request_id"]] != [""]
    assert seen["trailer_request_id"] and seen["trailer_request_id"][0]


@pytest.fixture(scope="module")
def go_client(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The Go client binary, built from stubs generated now."""
    missing = [
        tool for tool in ("go", "protoc-gen-go", "protoc-gen-go-grpc") if not shutil.which(tool)
    ]
    if missing or not (GOPATH_SOURCES / "src/google.golang.org/grpc").is_dir():
        pytest.skip(
            f"the Go toolchain is missing ({', '.join(missing) or 'gRPC sources'}): {INSTALL_HINT}"
        )
    gopath = tmp_path_factory.mktemp("gopath")
    source = gopath / "src"
    source.mkdir()
    _protoc(
        f"--plugin=protoc-gen-go={shutil.which('protoc-gen-go')}",
        f"--plugin=protoc-gen-go-grpc={shutil.which('protoc-gen-go-grpc')}",
        f"--go_out={source}",
        f"--go-grpc_out={source}",
    )
    generated = source / "drmlicenseproxy/gen/go/licenseproxy/v1"
    assert (generated / "license_proxy.pb.go").is_file(), "go_package did not place the stubs"
    client = source / "drmlicenseproxy/client"
    client.mkdir(parents=True)
    shutil.copy(ROOT / "tests/clients/go/main.go", client / "main.go")
    binary = gopath / "client"
    env = {
        **os.environ,
        "GO111MODULE": "off",
        "GOPATH": f"{gopath}{os.pathsep}{GOPATH_SOURCES}",
        "GOCACHE": str(ROOT / ".tools" / "gocache"),
        "GOFLAGS": "",
    }
    _run(["go", "vet", "drmlicenseproxy/..."], env=env, cwd=gopath)
    _run(["go", "build", "-o", str(binary), "drmlicenseproxy/client"], env=env, cwd=gopath)
    return binary


@pytest.fixture(scope="module")
def node_client(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The compiled Node client, built from stubs generated now."""
    tools = [NODE_MODULES / ".bin" / name for name in ("protoc-gen-ts_proto", "tsc")]
    if not shutil.which("node") or not all(tool.exists() for tool in tools):
        pytest.skip(f"node, ts-proto or typescript is missing: {INSTALL_HINT}")
    project = tmp_path_factory.mktemp("node-client")
    (project / "gen").mkdir()
    _protoc(
        f"--plugin=protoc-gen-ts_proto={tools[0]}",
        f"--ts_proto_out={project / 'gen'}",
        "--ts_proto_opt=outputServices=grpc-js,esModuleInterop=true,env=node",
    )
    shutil.copy(ROOT / "tests/clients/node/client.ts", project / "client.ts")
    (project / "node_modules").symlink_to(NODE_MODULES)
    tsconfig = {
        "compilerOptions": {
            "target": "es2020",
            "module": "commonjs",
            "strict": True,
            "esModuleInterop": True,
            # the generated stubs and the client are checked; the libraries' own .d.ts
            # files are not (that alone takes tsc most of its time)
            "skipLibCheck": True,
            "outDir": "out",
            "types": ["node"],
        },
        "files": ["client.ts"],
    }
    (project / "tsconfig.json").write_text(json.dumps(tsconfig))
    _run([str(tools[1]), "-p", str(project)], cwd=project)
    return project / "out" / "client.js"


async def test_a_go_client_from_the_protos_gets_a_license(go_client, proxy_factory, dev_token):
    proxy = await proxy_factory()
    challenge = base64.b64encode(clearkey_request(KID)).decode()
    seen = await _client_output([str(go_client), proxy.grpc_target, dev_token(), challenge])
    _expect_issued(seen)
    assert seen["error_code"] == "InvalidArgument"
    assert seen["error_details"] == [
        "type.googleapis.com/google.rpc.ErrorInfo",
        "type.googleapis.com/google.rpc.BadRequest",
    ]


async def test_a_node_client_from_the_protos_gets_a_license(node_client, proxy_factory, dev_token):
    proxy = await proxy_factory()
    challenge = base64.b64encode(clearkey_request(KID)).decode()
    seen = await _client_output(
        ["node", str(node_client), proxy.grpc_target, dev_token(), challenge]
    )
    _expect_issued(seen)
    assert seen["error_code"] == 3  # INVALID_ARGUMENT
    assert seen["has_status_details"] is True
