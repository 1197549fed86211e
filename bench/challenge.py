"""Microseconds per challenge inspection, for typical challenges of each DRM.

    python -m bench.challenge

Two figures per challenge: the parser alone, and the pipeline's whole inspect
step (size check, the inspector plugins in order, the key id hint check) as a
request meets it. Each figure is the best of 5 timing runs of many calls.
"""

from __future__ import annotations

import asyncio
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
    """Best-of-5 microseconds per call."""
    timer = timeit.Timer(call)
    number, _ = timer.autorange()
    return min(timer.repeat(repeat=5, number=number)) / number * 1e6


async def inspect_us(pipeline: Any, body: bytes, number: int) -> float:
    """Best-of-5 microseconds per ``Pipeline.inspect`` of ``body``, DRM left to detection."""
    request = LicenseRequest(challenge=body)
    best = float("inf")
    for _ in range(5):
        start = time.perf_counter()
        for _ in range(number):
            await pipeline.inspect(pipeline.new_context(request))
        best = min(best, time.perf_counter() - start)
    return best / number * 1e6


async def run() -> None:
    """Print one line per challenge: bytes, parser us, us per KiB, pipeline inspect us."""
    pipeline = build_pipeline(proxy_config())
    print(f"{'challenge':<30} {'bytes':>6} {'parse us':>9} {'us/KiB':>7} {'inspect us':>11}")
    for name, body, parse in challenges():
        parse_us = best_us(lambda b=body, p=parse: p(b))
        number = max(200, int(0.2 / ((parse_us + 20) * 1e-6)))
        whole_us = await inspect_us(pipeline, body, number)
        per_kib = parse_us / max(len(body) / 1024, 1.0)
        print(f"{name:<30} {len(body):>6} {parse_us:>9.1f} {per_kib:>7.1f} {whole_us:>11.1f}")


def main(argv: list[str] | None = None) -> None:
    """Run the benchmark."""
    asyncio.run(run())


if __name__ == "__main__":
    main()
