"""The import contracts of the layout (docs/architecture.md): the core never imports a
plugin, and built-in plugins use only the public kit, as an outside team's plugin would."""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

#: What a plugin may import from the core: the kit (``proxy``), the models, the
#: challenge parsers and, in its tests, the testing package.
PUBLIC = ("proxy", "proxy.model", "proxy.policy", "proxy.challenge", "proxy.testing")


def imports(path: Path) -> Iterator[tuple[int, str]]:
    """Every module ``path`` imports (TYPE_CHECKING and function-level imports included)."""
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield node.lineno, alias.name
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            yield node.lineno, node.module


def sources(folder: str) -> list[Path]:
    return sorted((ROOT / folder).rglob("*.py"))


def _is_public(module: str) -> bool:
    return any(module == p or module.startswith(p + ".") for p in PUBLIC[3:]) or module in PUBLIC


@pytest.mark.parametrize("path", sources("proxy"), ids=lambda p: str(p.relative_to(ROOT)))
def test_the_core_never_imports_a_plugin(path):
    for line, module in imports(path):
        assert module != "plugins" and not module.startswith("plugins."), f"{path}:{line}"


#: The built-ins, and the vendor package the tests install as an outside team's would be.
BUILT_INS = sources("plugins") + sources("tests/data/acmevendor")


@pytest.mark.parametrize("path", BUILT_INS, ids=lambda p: str(p.relative_to(ROOT)))
def test_built_in_plugins_import_only_the_public_kit(path):
    for line, module in imports(path):
        if module == "proxy" or module.startswith("proxy."):
            assert _is_public(module), f"{path}:{line} imports the private {module}"


def test_the_public_check_tells_kit_from_core():
    assert _is_public("proxy") and _is_public("proxy.model") and _is_public("proxy.policy")
    assert _is_public("proxy.challenge.widevine") and _is_public("proxy.testing.emulator")
    assert not _is_public("proxy.config") and not _is_public("proxy.upstream.client")
    assert not _is_public("proxy.policy.strictness") and not _is_public("proxy.pipeline")


#: What a vendor package's emulator and sandbox wiring (test support) may use, and its
#: adapter may not: a network client or server. Adapters translate; the core sends.
NETWORK = ("aiohttp", "socket", "http.client", "urllib.request", "requests", "httpx", "grpc")
ADAPTER_CODE = [
    p
    for p in sources("plugins/vendors") + sources("tests/data/acmevendor")
    if p.stem not in ("emulator", "sandbox")
]


@pytest.mark.parametrize("path", ADAPTER_CODE, ids=lambda p: str(p.relative_to(ROOT)))
def test_a_vendor_adapter_never_imports_a_network_client(path):
    for line, module in imports(path):
        private_client = module.startswith("proxy.upstream") or module.startswith("proxy.testing")
        network = any(module == n or module.startswith(n + ".") for n in NETWORK)
        assert not (network or private_client), f"{path}:{line} imports {module}"


def test_every_vendor_is_one_package_with_its_sandbox_wiring():
    vendors = ROOT / "plugins" / "vendors"
    packages = [p for p in vendors.iterdir() if p.is_dir() and p.name != "__pycache__"]
    assert packages and not (ROOT / "proxy" / "emulators").exists()
    assert sorted(p.name for p in vendors.glob("*.py")) == ["__init__.py"]
    for package in packages:
        assert (package / "__init__.py").is_file() and (package / "adapter.py").is_file()
        assert (package / "sandbox.py").is_file(), f"{package.name} has no sandbox wiring"


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _import_graph() -> dict[str, set[str]]:
    """Module -> the modules of ours it imports, TYPE_CHECKING imports included."""
    paths = {_module_name(p): p for p in sources("proxy") + sources("plugins")}
    graph: dict[str, set[str]] = {}
    for name, path in paths.items():
        edges = set()
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                for alias in node.names:
                    full = f"{node.module}.{alias.name}"
                    target = full if full in paths else node.module
                    if target in paths:
                        edges.add(target)
            elif isinstance(node, ast.Import):
                edges.update(alias.name for alias in node.names if alias.name in paths)
        edges.discard(name)
        graph[name] = edges
    return graph


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        for nxt in graph[node]:
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in graph:
        if node not in index:
            visit(node)
    return found


def test_no_import_cycle_even_for_type_checkers():
    assert _cycles(_import_graph()) == []


def test_the_cycle_finder_finds_a_cycle():
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
