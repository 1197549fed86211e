"""A registered vendor can't be half there: each has a section in docs/vendors.md, a row in its
vendor table, an emulator (or answers locally) and a conformance test module of its own.

The checks iterate the registry, so a new vendor package (built-in or installed beside
the project) is held to them with no edit here.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from proxy.services import Services
from proxy.vendors import LocalAdapter, VendorSpec
from tests import vendor_matrix

ROOT = Path(__file__).resolve().parent.parent
DOC = ROOT / "docs" / "vendors.md"


def missing_parts(spec: VendorSpec, doc: str, tests: Path) -> list[str]:
    """What a registered vendor lacks, in words an author can act on."""
    missing = []
    name = spec.name
    if not re.search(rf"^## {re.escape(name)}\b", doc, re.MULTILINE):
        missing.append(f"a '## {name}' section in docs/vendors.md")
    if not re.search(rf"^\| `{re.escape(name)}` \|", doc, re.MULTILINE):
        missing.append(f"a row for `{name}` in the vendor table of docs/vendors.md")
    if not (tests / f"test_vendor_{name}.py").is_file():
        missing.append(f"a conformance test module tests/test_vendor_{name}.py")
    if spec.sandbox is None:
        missing.append("a sandbox (VendorSpec.sandbox) with an emulator")
    else:
        sandbox = spec.sandbox()
        if sandbox.emulator() is None:
            settings = spec.settings.model_validate(sandbox.backend(None))
            if not isinstance(spec.adapter(name, settings, Services()), LocalAdapter):
                missing.append("an emulator (only a local vendor may run none)")
    return missing


@pytest.mark.parametrize("vendor", vendor_matrix.every_vendor())
def test_every_registered_vendor_has_docs_an_emulator_and_a_conformance_test(vendor):
    spec = vendor_matrix.spec(vendor)
    doc = DOC.read_text(encoding="utf-8")
    missing = missing_parts(spec, doc, ROOT / "tests")
    assert not missing, f"vendor {vendor!r} lacks " + "; ".join(missing)


@pytest.mark.parametrize("vendor", vendor_matrix.every_vendor())
def test_the_vendor_table_says_which_drms_each_vendor_serves(vendor):
    doc = DOC.read_text(encoding="utf-8")
    row = re.search(rf"^\| `{re.escape(vendor)}` \| ([^|]+) \|", doc, re.MULTILINE)
    assert row is not None
    listed = {word.strip().lower() for word in row.group(1).split(",")}
    assert listed == {drm.value for drm in vendor_matrix.spec(vendor).drm_systems}


def test_a_vendor_lacking_every_part_is_told_each_one(tmp_path):
    bare = VendorSpec(
        name="bare",
        settings=vendor_matrix.spec("clearkey").settings,
        adapter=vendor_matrix.spec("clearkey").adapter,
        drm_systems=frozenset(),
    )
    assert missing_parts(bare, "## clearkey\n", tmp_path) == [
        "a '## bare' section in docs/vendors.md",
        "a row for `bare` in the vendor table of docs/vendors.md",
        "a conformance test module tests/test_vendor_bare.py",
        "a sandbox (VendorSpec.sandbox) with an emulator",
    ]


def test_a_vendor_reached_over_http_needs_an_emulator(tmp_path):
    axinom = vendor_matrix.spec("axinom")
    assert axinom.sandbox is not None

    class NoEmulator(type(axinom.sandbox())):
        def emulator(self):
            return None

        def backend(self, url):
            return super().backend(url or "http://127.0.0.1:9")

    spec = VendorSpec(
        name="axinom",
        settings=axinom.settings,
        adapter=axinom.adapter,
        drm_systems=axinom.drm_systems,
        sandbox=NoEmulator,
    )
    (tmp_path / "test_vendor_axinom.py").write_text("")
    doc = "| `axinom` | Widevine |\n## axinom\n"
    assert missing_parts(spec, doc, tmp_path) == ["an emulator (only a local vendor may run none)"]
