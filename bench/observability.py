"""What the decision log, the stage marks and tracing cost per request: ``python -m bench.observability``.

Drives the real pipeline in-process (embedded default: HS256 token, ClearKey
backend) with ``Pipeline.acquire`` in a loop and measures the process's CPU
time (every thread: the decision log's writer thread included, after a flush),
best of ``--rounds`` rounds of ``--requests`` requests, for:

- ``[audit]`` off: the baseline;
- the decision log to the log stream only (the default; JSON format, to /dev/null);
- the decision log to a rotating file only;
- the decision log to the log stream (JSON format, to /dev/null) and the file;
- ``[telemetry]`` on with no exporter (the spans are made, then dropped).

The stage marks are always on; their own cost is measured alone (a StageClock
made and moved through every stage), as is the check that tracing is off.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import tempfile
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

from proxy.builder import build_pipeline
from proxy.challenge.samples import clearkey_request
from proxy.logs import JsonFormatter, RequestIdFilter, new_request_id
from proxy.model import DrmSystem, LicenseRequest
from proxy.pipeline import Pipeline
from proxy.stages import STAGES, StageClock
from proxy.testing import proxy_config
from proxy.tokens import development_token

KID = uuid.UUID("4060a865-8878-4267-9cbf-91ae5bae1e72").bytes


def variants(folder: Path) -> dict[str, dict[str, Any]]:
    """The configurations compared, by label."""
    log_file = str(folder / "decisions.jsonl")
    return {
        "audit off (baseline)": {"audit": {"enabled": False}},
        "decision log: stream (the default)": {"audit": {"stream": True}},
        "decision log: file": {"audit": {"stream": False, "file": log_file}},
        "decision log: stream + file": {"audit": {"stream": True, "file": log_file}},
        "audit off, telemetry on (no exporter)": {
            "audit": {"enabled": False},
            "telemetry": {"enabled": True, "exporter": "none"},
        },
    }


async def cpu_per_request(pipeline: Pipeline, requests: int, rounds: int) -> float:
    """Best of ``rounds``: CPU microseconds per ``Pipeline.acquire`` (all threads)."""
    token = development_token(ttl=86400)
    challenge = clearkey_request(KID)

    def request() -> LicenseRequest:
        return LicenseRequest(
            challenge=challenge,
            drm_system=DrmSystem.CLEARKEY,
            token=token,
            transport="grpc",
            request_id=new_request_id(),
        )

    for _ in range(200):  # warm-up: caches, metric children, the verification cache
        await pipeline.acquire(request())
    pipeline.services.audit.flush()
    best = float("inf")
    for _ in range(rounds):
        batch = [request() for _ in range(requests)]
        start = time.process_time()
        for item in batch:
            await pipeline.acquire(item)
        pipeline.services.audit.flush()
        best = min(best, time.process_time() - start)
    return best / requests * 1e6


def stage_marks_us(repeat: int = 200_000) -> float:
    """CPU microseconds for one request's stage marks: a clock, every stage, stop, close."""
    start = time.process_time()
    for _ in range(repeat):
        clock = StageClock()
        for stage in STAGES:
            clock.enter(stage)
        clock.stop()
    return (time.process_time() - start) / repeat * 1e6


def telemetry_check_us(repeat: int = 1_000_000) -> float:
    """CPU microseconds of what tracing costs when off: one ``is None`` test per call site."""
    telemetry = None
    start = time.process_time()
    for _ in range(repeat):
        _ = StageClock if telemetry is None else telemetry
        _ = None if telemetry is None else telemetry
    return (time.process_time() - start) / repeat * 1e6


async def run(args: argparse.Namespace) -> str:
    root = logging.getLogger()
    saved = root.handlers[:], root.level
    sink = open(os.devnull, "w")  # noqa: ASYNC230, SIM115 - /dev/null, closed below
    handler = logging.StreamHandler(sink)
    handler.addFilter(RequestIdFilter())
    handler.setFormatter(JsonFormatter())
    root.handlers[:] = [handler]
    root.setLevel(
        logging.WARNING
    )  # the pipeline's own INFO lines stay out; the audit stream stays in
    rows: list[tuple[str, float]] = []
    try:
        with tempfile.TemporaryDirectory() as tmp:
            for label, overrides in variants(Path(tmp)).items():
                pipeline = build_pipeline(proxy_config(overrides))
                async with pipeline.running():
                    rows.append(
                        (label, await cpu_per_request(pipeline, args.requests, args.rounds))
                    )
    finally:
        root.handlers[:], level = saved
        root.setLevel(level)
        sink.close()
    base = rows[0][1]
    lines = [
        f"In-process `Pipeline.acquire`, {args.requests} requests x best of {args.rounds}, "
        "CPU of every thread of the process.",
        "",
        "| configuration | CPU us/request | over the baseline |",
        "| --- | ---: | ---: |",
    ]
    lines += [f"| {label} | {us:.1f} | {us - base:+.1f} |" for label, us in rows]
    lines += [
        "",
        f"- stage marks (always on): {stage_marks_us():.2f} us per request "
        f"({len(STAGES)} stages, clock made and stopped)",
        f"- tracing off: {telemetry_check_us() * 1000:.0f} ns for the two `is None` checks "
        "a request meets (context, upstream call)",
    ]
    return "\n".join(lines)


def parser() -> argparse.ArgumentParser:
    """Command-line options."""
    p = argparse.ArgumentParser(prog="python -m bench.observability", description=__doc__)
    p.add_argument("--requests", type=int, default=3000, help="requests per round")
    p.add_argument("--rounds", type=int, default=5, help="rounds; the best is reported")
    return p


def main(argv: list[str] | None = None) -> None:
    """Print the Markdown table."""
    args = parser().parse_args(argv)
    print(asyncio.run(run(args)), flush=True)


#: What ``make bench`` calls through :mod:`bench.__main__`.
_: Callable[..., Any] = main

if __name__ == "__main__":
    main()
