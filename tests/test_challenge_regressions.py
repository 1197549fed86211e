"""Regression inputs from fuzzing (tests/data/fuzz): every one keeps raising only
the typed error, and every crash the fuzzer ever found stays fixed."""

from __future__ import annotations

import base64
import json

import pytest

from proxy.challenge.targets import TARGETS, run_target
from tests.conftest import DATA

FUZZ = DATA / "fuzz"


def _inputs():
    for path in sorted(FUZZ.glob("*.json")):
        doc = json.loads(path.read_text())
        for index, text in enumerate(doc["inputs"]):
            yield pytest.param(doc["target"], base64.b64decode(text), id=f"{path.stem}-{index}")


@pytest.mark.parametrize(("target", "body"), list(_inputs()))
def test_fuzz_corpus_input(target, body):
    run_target(target, body)


def test_every_target_has_a_corpus():
    assert {json.loads(p.read_text())["target"] for p in FUZZ.glob("*.json")} == set(TARGETS)


# Found by hand while reviewing the foundation's ClearKey parser: a non-string
# "type" reached a frozenset membership test and escaped as TypeError.
@pytest.mark.parametrize(
    "body",
    [
        b'{"kids":["LwVHf8JLtPrv2GUXFW2v_A"],"type":[]}',
        b'{"kids":["LwVHf8JLtPrv2GUXFW2v_A"],"type":{}}',
    ],
)
def test_clearkey_unhashable_type(body):
    assert run_target("clearkey", body) is None
