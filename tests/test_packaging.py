"""The project installs anywhere: its wheel, built from a copy of the source the way the
container is built, serves a license from a fresh virtualenv outside the checkout; the
sdist carries what the build generates from; the generator and the runtime floors agree."""

from __future__ import annotations

import asyncio
import fnmatch
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tarfile
import tomllib
import uuid
from pathlib import Path

import aiohttp
import grpc
from packaging.requirements import Requirement
from packaging.version import Version

from licenseproxy.v1 import license_proxy_pb2 as pb
from licenseproxy.v1 import license_proxy_pb2_grpc as pb_grpc
from tests.conftest import clearkey_request

ROOT = Path(__file__).resolve().parent.parent
KID = uuid.UUID("4060a865-8878-4267-9cbf-91ae5bae1e72").bytes
LISTENING = re.compile(rb"serving gRPC on [\d.]+:(\d+) and HTTP on [\d.]+:(\d+)")
#: Outer bound on the build and install (downloads included) and on the server's start.
BOUND = 600


def copy_build_context(destination: Path) -> Path:
    """Copy the checkout as a container build sees it (``.dockerignore`` applied): no venv,
    no generated code, no caches."""
    patterns = [
        line.strip()
        for line in (ROOT / ".dockerignore").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]

    def ignored(folder: str, names: list[str]) -> set[str]:
        relative = Path(folder).relative_to(ROOT)
        skip = set()
        for name in names:
            path = str(relative / name) if str(relative) != "." else name
            for pattern in patterns:
                if pattern.startswith("**/"):
                    if fnmatch.fnmatch(name, pattern[3:]):
                        skip.add(name)
                elif fnmatch.fnmatch(path, pattern):
                    skip.add(name)
        return skip

    shutil.copytree(ROOT, destination, ignore=ignored)
    return destination


def _clean_env() -> dict[str, str]:
    """The environment without this checkout's venv and import path."""
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    env["PYTHON"] = sys.executable
    return env


def _run(argv: list[str], cwd: Path) -> str:
    done = subprocess.run(
        argv, cwd=cwd, env=_clean_env(), capture_output=True, text=True, timeout=BOUND
    )
    assert done.returncode == 0, f"{argv} failed:\n{done.stdout}\n{done.stderr}"
    return done.stdout


async def test_the_built_wheel_serves_a_license_from_a_fresh_virtualenv(tmp_path):
    source = copy_build_context(tmp_path / "src")
    assert not (source / "licenseproxy").exists()  # the build must make it
    # the two steps of deploy/Dockerfile, run the same way
    _run(["sh", "deploy/build-wheels.sh", str(source), str(tmp_path / "wheels")], source)
    _run(
        ["sh", "deploy/install-wheels.sh", str(tmp_path / "wheels"), str(tmp_path / "venv")], source
    )
    venv = tmp_path / "venv" / "bin"
    where = _run(
        [str(venv / "python"), "-c", "import licenseproxy, proxy; print(proxy.__file__)"], tmp_path
    )
    assert where.startswith(str(tmp_path / "venv"))

    config = tmp_path / "proxy.toml"
    config.write_text(
        (ROOT / "proxy" / "default.toml")
        .read_text()
        .replace("port = 50051", "port = 0")
        .replace("port = 8080", "port = 0")
        .replace("port = 8081", "port = 0")
    )
    token = _run([str(venv / "license-proxy"), "token"], tmp_path).strip()
    process = await asyncio.create_subprocess_exec(
        str(venv / "license-proxy"),
        "serve",
        "--config",
        str(config),
        cwd=tmp_path,
        env=_clean_env(),
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        assert process.stderr is not None
        line = b""
        async with asyncio.timeout(BOUND):
            while not (match := LISTENING.search(line)):
                line = await process.stderr.readline()
                assert line, "the installed proxy exited before listening"
        grpc_port, http_port = int(match[1]), int(match[2])
        async with (
            aiohttp.ClientSession() as session,
            session.post(
                f"http://127.0.0.1:{http_port}/v1/licenses/clearkey",
                data=clearkey_request(KID),
                headers={"Authorization": f"Bearer {token}"},
            ) as response,
        ):
            assert response.status == 200
            keys = json.loads(await response.read())["keys"]
            assert len(keys) == 1 and keys[0]["kty"] == "oct"
        async with grpc.aio.insecure_channel(f"127.0.0.1:{grpc_port}") as channel:
            reply = await pb_grpc.LicenseProxyServiceStub(channel).AcquireLicense(
                pb.AcquireLicenseRequest(
                    drm_system=pb.DRM_SYSTEM_CLEARKEY, challenge=clearkey_request(KID), token=token
                )
            )
            assert json.loads(reply.license)["keys"] == keys
        process.send_signal(signal.SIGTERM)
        assert await asyncio.wait_for(process.wait(), BOUND) == 0
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
    # a plugin team's package depends on the proxy by name: pip takes it from the wheelhouse
    plugin = source / "examples" / "inhouse-plugin"
    _run(
        [str(venv / "pip"), "install", "--find-links", str(tmp_path / "wheels"), str(plugin)],
        tmp_path,
    )
    assert "acme_embargo" in _run([str(venv / "license-proxy"), "plugins"], tmp_path)


def test_the_sdist_carries_the_protos_and_the_build_backend(tmp_path):
    source = copy_build_context(tmp_path / "src")
    hook = (
        "import sys; sys.path.insert(0, 'build_backend'); import license_proxy_build as b; "
        f"print(b.build_sdist({str(tmp_path / 'dist')!r}))"
    )
    name = _run([sys.executable, "-c", hook], source).strip().splitlines()[-1]
    with tarfile.open(tmp_path / "dist" / name) as sdist:
        members = {m.split("/", 1)[1] for m in sdist.getnames() if "/" in m}
    protos = {str(p.relative_to(ROOT)) for p in (ROOT / "protos").rglob("*.proto")}
    assert protos <= members
    assert {"build_backend/license_proxy_build.py", "pyproject.toml"} <= members


def _floor(requirements: list[str], name: str) -> Version:
    for text in requirements:
        requirement = Requirement(text)
        if requirement.name == name:
            (spec,) = [s for s in requirement.specifier if s.operator in (">=", "==")]
            return Version(spec.version)
    raise AssertionError(f"{name} is not required")


def test_the_generator_is_pinned_and_the_runtime_floors_cover_its_code():
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())
    generator = _floor(pyproject["build-system"]["requires"], "grpcio-tools")
    dependencies = pyproject["project"]["dependencies"]
    grpc_code = (ROOT / "licenseproxy" / "v1" / "license_proxy_pb2_grpc.py").read_text()
    grpc_needs = Version(re.search(r"GRPC_GENERATED_VERSION = '([^']+)'", grpc_code)[1])
    message_code = (ROOT / "licenseproxy" / "v1" / "license_proxy_pb2.py").read_text()
    numbers = re.search(
        r"ValidateProtobufRuntimeVersion\(\s*_runtime_version\.Domain\.PUBLIC,\s*(\d+),\s*(\d+),\s*(\d+),",
        message_code,
    )
    protobuf_needs = Version(".".join(numbers.groups()))
    # make generated this tree with the pinned generator, and the install floors admit
    # nothing older than what its code checks for at import
    assert grpc_needs == generator
    assert _floor(dependencies, "grpcio") >= grpc_needs
    assert _floor(dependencies, "protobuf") >= protobuf_needs
    requirement = next(r for r in pyproject["build-system"]["requires"] if "grpcio-tools" in r)
    assert Requirement(requirement).specifier.__str__().startswith("==")
