"""Documentation and coverage can't drift: every hook has a docstring a plugin author can work
from, a section in docs/hooks.md, and a test of its own (datasette's two meta-tests)."""

from __future__ import annotations

import ast
import inspect
import re
from pathlib import Path

import pytest

from proxy import hookspecs
from proxy.hookspecs import Rule
from proxy.pluginhost import PER_REQUEST_HOOKS, hook_rule

ROOT = Path(__file__).resolve().parent.parent
HOOKS = hookspecs.HOOK_NAMES


def test_every_hookspec_is_listed_in_pipeline_order():
    declared = {
        name
        for name, value in vars(hookspecs).items()
        if name.startswith("proxy_") and callable(value)
    }
    assert declared == set(HOOKS)
    assert list(hookspecs.HOOKS) == list(HOOKS)


#: How docs/hooks.md words each rule on a section's ``Rule:`` line.
DOCS_RULE_WORDS = {
    Rule.FIRST: "Rule: **first**",
    Rule.ALL: "Rule: **all**",
    Rule.OBSERVER: "Rule: **observer**",
    Rule.STARTUP: "Rule: **all**, synchronous",
}


@pytest.mark.parametrize("hook", HOOKS)
def test_the_prose_rules_say_what_the_registry_declares(hook):
    rule = hookspecs.HOOKS[hook].rule
    doc = inspect.getdoc(getattr(hookspecs, hook)) or ""
    lines = [line.strip() for line in doc.splitlines() if line.strip().startswith("Rule:")]
    assert lines == [rule.docstring_line], f"{hook}'s docstring contradicts its declared rule"
    text = (ROOT / "docs" / "hooks.md").read_text(encoding="utf-8")
    section = text.split(f"## `{hook}(", 1)[1].split("\n## ", 1)[0]
    assert DOCS_RULE_WORDS[rule] in section, f"docs/hooks.md contradicts {hook}'s declared rule"


@pytest.mark.parametrize("hook", HOOKS)
def test_hook_has_a_docstring_with_params_rule_and_example(hook):
    function = getattr(hookspecs, hook)
    doc = inspect.getdoc(function) or ""
    for param in inspect.signature(function).parameters:
        assert f":param {param}:" in doc, f"{hook} does not document {param}"
    assert hook_rule(hook) in ("first", "all", "observer", "startup")
    assert "Example::" in doc


@pytest.mark.parametrize("hook", HOOKS)
def test_hook_has_a_section_in_docs(hook):
    text = (ROOT / "docs" / "hooks.md").read_text(encoding="utf-8")
    assert re.search(rf"^## `{hook}\(", text, re.MULTILINE), f"docs/hooks.md lacks a {hook} section"


def _test_function_names() -> set[str]:
    names = set()
    for path in (ROOT / "tests").rglob("test_*.py"):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        names.update(
            node.name
            for node in ast.walk(tree)
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef)
        )
    return names


@pytest.mark.parametrize("hook", HOOKS)
def test_hook_has_a_test_of_its_own(hook):
    assert f"test_hook_{hook}" in _test_function_names()


def test_per_request_hooks_are_never_firstresult():
    for hook in PER_REQUEST_HOOKS:
        opts = getattr(hookspecs, hook).license_proxy_spec
        assert not opts.get("firstresult"), hook


def test_every_reason_is_in_the_proto_and_the_docs_with_its_statuses():
    from licenseproxy.v1 import license_proxy_pb2 as pb
    from proxy.errors import Reason

    proto = {
        name.removeprefix("ERROR_REASON_")
        for name in pb.ErrorReason.keys()  # noqa: SIM118 (an EnumTypeWrapper, not a dict)
        if name != "ERROR_REASON_UNSPECIFIED"
    }
    assert proto == {reason.value for reason in Reason}
    text = (ROOT / "docs" / "errors.md").read_text(encoding="utf-8")
    for reason in Reason:
        row = f"| `{reason.value}` | {reason.grpc_code.name} | {reason.http_status} |"
        assert row in text, f"docs/errors.md lacks or contradicts {reason.value}"


def test_the_repository_tracks_no_symbolic_link_and_no_generated_code():
    """Regression: a worktree's link to the generated ``licenseproxy`` package was committed
    (the ignore rule matched directories only), and a checkout replaced the code with it."""
    import shutil
    import subprocess

    if shutil.which("git") is None or not (ROOT / ".git").exists():
        pytest.skip("not a git checkout")
    listed = subprocess.run(
        ["git", "ls-files", "-s"], cwd=ROOT, capture_output=True, text=True, check=True
    ).stdout.splitlines()
    links = [line.split("\t", 1)[1] for line in listed if line.startswith("120000 ")]
    assert links == []
    assert not any(line.split("\t", 1)[1].startswith("licenseproxy/") for line in listed)
