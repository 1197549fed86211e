"""Where a PlayReady challenge's parse goes, stage by stage, next to the parser it replaced.

    python -m bench.playready_xml [--rounds N]

One process, the stages alternating ``--rounds`` times (each figure the best of its
rounds, each round the best of 5 timing runs, CPU time of this process), on the
published AcquireLicense request (3786 bytes, 55 elements):

- the previous parser: defusedxml's pure-Python ``XMLParser`` (forbid DTD, entities,
  external references) with the element-counting builder, as ``parse_xml`` ran it
  until issue 17;
- each stage of today's ``parse_xml`` alone (decode, the ``<!``/NUL scan, the
  encoding check, the ``<`` count, the C parser with the DOCTYPE-refusing builder,
  the depth walk), the C parser with the stdlib's own builder (the floor: no guard
  at all), and expat with no handlers;
- ``parse_xml`` and ``parse_playready`` whole.
"""

from __future__ import annotations

import argparse
import time
import timeit
import xml.etree.ElementTree as ET
from collections.abc import Callable
from pathlib import Path
from typing import Any
from xml.parsers import expat

from defusedxml.ElementTree import XMLParser as DefusedXMLParser

from proxy.challenge import xmlsafe
from proxy.challenge.playready import parse_playready

ROOT = Path(__file__).resolve().parent.parent
REQUEST = ROOT / "tests/data/playready/ms_docs_license_server_AcquireLicense_request.xml"


def _best_us(call: Callable[[], Any]) -> float:
    timer = timeit.Timer(call, timer=time.process_time)
    number, _ = timer.autorange()
    return min(timer.repeat(repeat=5, number=number)) / number * 1e6


def stages(body: bytes) -> dict[str, Callable[[], Any]]:
    """The calls timed, by the name printed."""
    text = body.decode()
    root = xmlsafe.parse_xml(body, "PlayReady")

    def defused() -> ET.Element:
        parser = DefusedXMLParser(
            target=xmlsafe._BoundedTreeBuilder(),
            forbid_dtd=True,
            forbid_entities=True,
            forbid_external=True,
        )
        parser.feed(body)
        return parser.close()

    def c_parser(builder: Callable[[], ET.TreeBuilder]) -> Callable[[], ET.Element]:
        def parse() -> ET.Element:
            parser = ET.XMLParser(target=builder())  # noqa: S314 - the bench's own file
            parser.feed(text)
            return parser.close()

        return parse

    def bare_expat() -> None:
        expat.ParserCreate(namespace_separator="}").Parse(text, True)

    return {
        "before: defusedxml parser + counting builder": defused,
        "parse_xml": lambda: xmlsafe.parse_xml(body, "PlayReady"),
        "  decode": lambda: xmlsafe._decoded(body, "PlayReady"),
        "  <! and NUL scan": lambda: xmlsafe._refuse_dtd_markup(text, "PlayReady"),
        "  declared encoding check": lambda: xmlsafe._refuse_other_encoding(text, False, "P"),
        "  '<' count": lambda: text.count("<"),
        "  C parser, DOCTYPE-refusing builder": c_parser(xmlsafe._TreeBuilder),
        "  depth walk": lambda: xmlsafe._check_depth(root),
        "floor: C parser, stdlib builder, no guard": c_parser(ET.TreeBuilder),
        "floor: expat alone, no handlers": bare_expat,
        "parse_playready (parse_xml + reading)": lambda: parse_playready(body),
    }


def main(argv: list[str] | None = None) -> None:
    """Print one Markdown row per stage."""
    parser = argparse.ArgumentParser(prog="python -m bench.playready_xml", description=__doc__)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args(argv)
    calls = stages(REQUEST.read_bytes())
    best = dict.fromkeys(calls, float("inf"))
    for _ in range(args.rounds):
        for name, call in calls.items():
            best[name] = min(best[name], _best_us(call))
    print("| stage | CPU us |\n| --- | ---: |")
    for name, figure in best.items():
        print(f"| {name} | {figure:.1f} |")


if __name__ == "__main__":
    main()
