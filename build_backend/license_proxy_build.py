"""The build backend: setuptools, after generating the ``licenseproxy`` package from ``protos/``.

``pip install .``, ``pip wheel .``, ``python -m build`` and the editable install
``make`` runs all reach setuptools through this module (``[build-system]`` in
pyproject.toml). Each hook first writes the protobuf/gRPC code into
``licenseproxy/`` beside ``proxy/``, where setuptools' package discovery finds
it, so every way of building ships the same generated code. The generator is the
exact ``grpcio-tools`` pinned in ``[build-system] requires``: the generated code
checks at import that grpcio and protobuf are at least the generator's versions,
and the project's runtime lower bounds say the same (a test keeps them in step).

Run as a script (``python build_backend/license_proxy_build.py``) it only
generates, with the grpcio-tools of the running interpreter; ``--requirements``
prints what generating needs (one requirement a line) for ``make`` to install.
"""

from __future__ import annotations

import filecmp
import shutil
import sys
import tempfile
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
PROTOS = "protos"
PACKAGE = "licenseproxy"


def generator_requirements(root: Path = ROOT) -> list[str]:
    """What the generation needs from ``[build-system] requires`` (setuptools aside): the
    pinned ``grpcio-tools`` and ``googleapis-common-protos``."""
    import tomllib

    requires = tomllib.loads((root / "pyproject.toml").read_text())["build-system"]["requires"]
    return [r for r in requires if not r.replace(" ", "").startswith("setuptools")]


def googleapis_root() -> Path:
    """The folder holding ``google/api/*.proto``, as the googleapis-common-protos wheel
    installs them: the protos import ``google/api/annotations.proto`` and friends."""
    import google.api

    for folder in google.api.__path__:
        if (Path(folder) / "annotations.proto").is_file():
            return Path(folder).parent.parent
    raise RuntimeError("googleapis-common-protos ships no google/api/annotations.proto")


def generate(root: Path = ROOT) -> list[str]:
    """Write the generated package under ``root``; return the files that changed.

    The code is generated into a scratch folder and copied over only where it
    differs, so an unchanged proto leaves file times alone; files no proto
    produces any more are removed.
    """
    from importlib import resources

    from grpc_tools import protoc

    protos = sorted(str(p.relative_to(root / PROTOS)) for p in (root / PROTOS).rglob("*.proto"))
    if not protos:
        raise RuntimeError(f"no .proto files under {root / PROTOS}")
    well_known = resources.files("grpc_tools") / "_proto"
    with tempfile.TemporaryDirectory() as scratch:
        args = [
            "grpc_tools.protoc",
            f"-I{root / PROTOS}",
            f"-I{well_known}",
            f"-I{googleapis_root()}",
            f"--python_out={scratch}",
            f"--pyi_out={scratch}",
            f"--grpc_python_out={scratch}",
            *protos,
        ]
        if protoc.main(args) != 0:
            raise RuntimeError(f"protoc failed on {', '.join(protos)}")
        out = Path(scratch) / PACKAGE
        for folder in [out, *(p for p in out.rglob("*") if p.is_dir())]:
            (folder / "__init__.py").touch()
        return _sync(out, root / PACKAGE)


def _sync(source: Path, target: Path) -> list[str]:
    changed = []
    wanted = {p.relative_to(source) for p in source.rglob("*") if p.is_file()}
    for relative in sorted(wanted):
        destination = target / relative
        if destination.is_file() and filecmp.cmp(source / relative, destination, shallow=False):
            continue
        destination.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(source / relative, destination)
        changed.append(str(relative))
    if target.is_dir():
        for stale in target.rglob("*"):
            generated = stale.is_file() and stale.suffix in (".py", ".pyi")
            if generated and stale.relative_to(target) not in wanted:
                stale.unlink()
                changed.append(f"{stale.relative_to(target)} (removed)")
    return changed


# -- PEP 517 / PEP 660 hooks: generate, then hand over to setuptools ---------------------
# setuptools is imported in the hooks only: the script use above needs grpc_tools alone.


def _setuptools() -> Any:
    from setuptools import build_meta

    return build_meta


def get_requires_for_build_wheel(config_settings: Any = None) -> list[str]:
    """setuptools' hook."""
    return _setuptools().get_requires_for_build_wheel(config_settings)


def get_requires_for_build_sdist(config_settings: Any = None) -> list[str]:
    """setuptools' hook."""
    return _setuptools().get_requires_for_build_sdist(config_settings)


def get_requires_for_build_editable(config_settings: Any = None) -> list[str]:
    """setuptools' hook."""
    return _setuptools().get_requires_for_build_editable(config_settings)


def prepare_metadata_for_build_wheel(metadata_directory: str, config_settings: Any = None) -> str:
    """Generate, then setuptools' hook."""
    generate(Path.cwd())
    return _setuptools().prepare_metadata_for_build_wheel(metadata_directory, config_settings)


def prepare_metadata_for_build_editable(
    metadata_directory: str, config_settings: Any = None
) -> str:
    """Generate, then setuptools' hook."""
    generate(Path.cwd())
    return _setuptools().prepare_metadata_for_build_editable(metadata_directory, config_settings)


def build_wheel(
    wheel_directory: str, config_settings: Any = None, metadata_directory: str | None = None
) -> str:
    """Generate, then setuptools' hook."""
    generate(Path.cwd())
    return _setuptools().build_wheel(wheel_directory, config_settings, metadata_directory)


def build_editable(
    wheel_directory: str, config_settings: Any = None, metadata_directory: str | None = None
) -> str:
    """Generate into the source tree (the editable install imports it from there)."""
    generate(Path.cwd())
    return _setuptools().build_editable(wheel_directory, config_settings, metadata_directory)


def build_sdist(sdist_directory: str, config_settings: Any = None) -> str:
    """Generate, then setuptools' hook (the sdist carries protos/ and regenerates on build)."""
    generate(Path.cwd())
    return _setuptools().build_sdist(sdist_directory, config_settings)


if __name__ == "__main__":
    if sys.argv[1:] == ["--requirements"]:
        print("\n".join(generator_requirements()))
    else:
        for name in generate():
            print(f"generated {PACKAGE}/{name}")
