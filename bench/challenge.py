"""Microseconds per challenge inspection, for typical challenges of each DRM.

    python -m bench.challenge [--match TEXT] [--before CHECKOUT [--rounds N]]

Two figures per challenge: the parser alone, and the pipeline's whole inspect
step (size check, the inspector plugins in order, the key id hint check) as a
request meets it. Each figure is the best of 5 timing runs of many calls, in CPU
time of this process (on a shared machine, wall time counts other processes' turns).
``--match`` keeps the challenges whose name holds TEXT.

``--before CHECKOUT`` measures another revision's checkout too: each checkout in a
fresh interpreter, alternating, ``--rounds`` times (each figure the best of its
rounds), on this venv's dependencies; it prints both side by side, a before/after
pair from one run.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import time
import timeit
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

from proxy.builder import build_pipeline
from proxy.challenge import samples
from proxy.challenge.clearkey import parse_clearkey
from proxy.challenge.fairplay import parse_fairplay
from proxy.challenge.playready import parse_playready
from proxy.challenge.widevine import parse_widevine
from proxy.model import LicenseRequest
from proxy.testing import proxy_config

ROOT = Path(__file__).resolve().parent.parent
KID = uuid.UUID("4060a865-8878-4267-9cbf-91ae5bae1e72").bytes
KID2 = uuid.UUID("a2c786d0-f9ef-4cb3-b333-cd323a4284a5").bytes


def challenges() -> list[tuple[str, bytes, Callable[[bytes], Any]]]:
    """(name, bytes, parser) for each typical challenge."""
    playready = (
        ROOT / "tests/data/playready/ms_docs_license_server_AcquireLicense_request.xml"
    ).read_bytes()
    spc = samples.fairplay_spc()
    return [
        (
            "widevine license request",
            samples.widevine_license_request(key_ids=[KID, KID2], content_id=b"movie-1"),
            parse_widevine,
        ),
        (
            "widevine privacy mode",
            samples.widevine_license_request(key_ids=[KID], privacy=True),
            parse_widevine,
        ),
        (
            "widevine cenc init data",
            samples.widevine_license_request(form="init_data", key_ids=[KID], content_id=b"c"),
            parse_widevine,
        ),
        ("widevine service cert", b"\x08\x04", parse_widevine),
        ("playready (MS docs request)", playready, parse_playready),
        ("playready key message", samples.playready_key_message(playready), parse_playready),
        (
            "playready 4.3, 2 keys",
            samples.playready_challenge(samples.wrm_header("4.3.0.0", [KID, KID2])),
            parse_playready,
        ),
        ("fairplay spc= form", samples.fairplay_form(spc, asset_id="a-1"), parse_fairplay),
        ("clearkey request", samples.clearkey_request(KID, KID2), parse_clearkey),
    ]


def best_us(call: Callable[[], Any]) -> float:
    """Best-of-5 CPU microseconds per call."""
    timer = timeit.Timer(call, timer=time.process_time)
    number, _ = timer.autorange()
    return min(timer.repeat(repeat=5, number=number)) / number * 1e6


async def inspect_us(pipeline: Any, body: bytes, number: int) -> float:
    """Best-of-5 CPU microseconds per ``Pipeline.inspect`` of ``body``, DRM left to detection."""
    request = LicenseRequest(challenge=body)
    best = float("inf")
    for _ in range(5):
        start = time.process_time()
        for _ in range(number):
            await pipeline.inspect(pipeline.new_context(request))
        best = min(best, time.process_time() - start)
    return best / number * 1e6


async def measure(match: str = "") -> list[tuple[str, int, float, float]]:
    """(name, bytes, parser us, pipeline inspect us) for each challenge whose name holds ``match``."""
    pipeline = build_pipeline(proxy_config())
    rows = []
    for name, body, parse in challenges():
        if match not in name:
            continue
        parse_us = best_us(lambda b=body, p=parse: p(b))
        number = max(200, int(0.2 / ((parse_us + 20) * 1e-6)))
        rows.append((name, len(body), parse_us, await inspect_us(pipeline, body, number)))
    return rows


def _print_rows(rows: list[tuple[str, int, float, float]]) -> None:
    print(f"{'challenge':<30} {'bytes':>6} {'parse us':>9} {'us/KiB':>7} {'inspect us':>11}")
    for name, size, parse_us, whole_us in rows:
        per_kib = parse_us / max(size / 1024, 1.0)
        print(f"{name:<30} {size:>6} {parse_us:>9.1f} {per_kib:>7.1f} {whole_us:>11.1f}")


def _in_fresh_interpreter(checkout: str, match: str) -> list[list[Any]]:
    """This measurement, as JSON rows, in a new interpreter that imports ``checkout``'s code."""
    # Not run as a script: its folder would join sys.path, and bench/token.py would shadow
    # the standard library's token module.
    code = (
        "import runpy, sys; sys.argv = ['challenge', '--json', '--match', sys.argv[1]]; "
        f"runpy.run_path({str(Path(__file__).resolve())!r}, run_name='__main__')"
    )
    result = subprocess.run(
        [sys.executable, "-c", code, match],
        cwd="/",
        env={**os.environ, "PYTHONPATH": checkout},
        capture_output=True,
        text=True,
        check=True,
    )
    rows: list[list[Any]] = json.loads(result.stdout.strip().splitlines()[-1])
    return rows


def _compare(before: str, match: str, rounds: int) -> None:
    """Both checkouts, alternating; each figure the best of its rounds."""
    here = str(ROOT)
    best: dict[str, dict[str, list[float]]] = {"before": {}, "after": {}}
    sizes: dict[str, int] = {}
    for _ in range(rounds):
        for label, checkout in (("before", before), ("after", here)):
            for name, size, parse_us, whole_us in _in_fresh_interpreter(checkout, match):
                sizes[name] = size
                old = best[label].get(name, [float("inf"), float("inf")])
                best[label][name] = [min(old[0], parse_us), min(old[1], whole_us)]
    print(
        f"{'challenge':<30} {'bytes':>6} {'parse before':>13} {'parse after':>12} "
        f"{'inspect before':>15} {'inspect after':>14} {'x faster':>9}"
    )
    for name, size in sizes.items():
        (pb, ib), (pa, ia) = best["before"][name], best["after"][name]
        print(
            f"{name:<30} {size:>6} {pb:>13.1f} {pa:>12.1f} {ib:>15.1f} {ia:>14.1f} {ib / ia:>9.2f}"
        )


def main(argv: list[str] | None = None) -> None:
    """Run the benchmark."""
    parser = argparse.ArgumentParser(prog="python -m bench.challenge", description=__doc__)
    parser.add_argument("--match", default="", help="only challenges whose name holds this")
    parser.add_argument("--before", metavar="CHECKOUT", help="compare with another checkout")
    parser.add_argument("--rounds", type=int, default=3, help="rounds per checkout (--before)")
    parser.add_argument("--json", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.before:
        _compare(args.before, args.match, args.rounds)
        return
    rows = asyncio.run(measure(args.match))
    if args.json:
        print(json.dumps(rows))
    else:
        _print_rows(rows)


if __name__ == "__main__":
    main()
