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


BUILT_INS = [p for p in sources("plugins") if "vendors" not in p.relative_to(ROOT).parts]


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
