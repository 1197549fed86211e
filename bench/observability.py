"""What the decision log, the stage marks and tracing cost per request: ``python -m bench.observability``.

Drives the real pipeline in-process (embedded default: HS256 token, ClearKey
backend) with ``Pipeline.acquire`` in a loop and measures CPU time: the event
loop's thread, and the whole process (the decision log's writer thread
included, after a flush). Rounds of ``--requests`` requests go to each
configuration in turn, ``--rounds`` times, and each keeps its best round, so
a machine whose load drifts during the run skews no configuration more than
another. The configurations:

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
import contextlib
import logging
import os
import tempfile
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

from proxy.audit import AuditLog, AuditSettings
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


def requests_of(count: int) -> list[LicenseRequest]:
    """``count`` fresh license requests (each its own request id)."""
    token = development_token(ttl=86400)
    challenge = clearkey_request(KID)
    return [
        LicenseRequest(
            challenge=challenge,
            drm_system=DrmSystem.CLEARKEY,
            token=token,
            transport="grpc",
            request_id=new_request_id(),
        )
        for _ in range(count)
    ]


async def one_round(pipeline: Pipeline, requests: int) -> tuple[float, float]:
    """CPU microseconds per ``Pipeline.acquire``: the loop's thread, and every thread."""
    batch = requests_of(requests)
    loop_start, process_start = time.thread_time(), time.process_time()
    for item in batch:
        await pipeline.acquire(item)
    loop_spent = time.thread_time() - loop_start
    pipeline.services.audit.flush()
    process_spent = time.process_time() - process_start
    return loop_spent / requests * 1e6, process_spent / requests * 1e6


async def components_us(folder: Path, repeat: int = 5) -> dict[str, float]:
    """The decision log's parts, each timed alone on one thread (steadier than the whole on a
    busy machine): the observer on the event loop, then the writer's work per record."""
    log_file = folder / "parts.jsonl"
    settings = {
        "file": AuditSettings(stream=False, file=log_file),
        "stream": AuditSettings(stream=True),
    }
    pipeline = build_pipeline(proxy_config({"audit": {"stream": False, "file": str(log_file)}}))
    parts: dict[str, float] = {}
    async with pipeline.running():
        [request] = requests_of(1)
        ctx = pipeline.new_context(request)
        result = await pipeline._acquire(ctx)
        ctx.stages.stop()
        count = 2000
        best = float("inf")
        for _ in range(repeat):
            start = time.thread_time()
            for _ in range(count):
                await pipeline.host.license_issued(ctx, result)
            best = min(best, time.thread_time() - start)
            pipeline.services.audit.flush()
        parts["on the event loop: the audit observer, the record queued"] = best / count * 1e6
        decisions = []
        for _ in range(count):
            audit = pipeline.services.audit
            captured: list[Any] = []
            audit._put = captured.append  # type: ignore[method-assign]
            await pipeline.host.license_issued(ctx, result)
            decisions.extend(captured)
            del audit._put
    for name, sink_settings in settings.items():
        audit = AuditLog(sink_settings)
        audit.start()
        best = float("inf")
        for _ in range(repeat):
            start = time.thread_time()
            for offset in range(0, count, 500):
                audit._write(decisions[offset : offset + 500])
            best = min(best, time.thread_time() - start)
        await asyncio.to_thread(audit.stop)
        parts[f"writer thread, {name} sink: encode and write one record"] = best / count * 1e6
    return parts


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
    best: dict[str, tuple[float, float]] = {}
    try:
        with tempfile.TemporaryDirectory() as tmp:
            async with contextlib.AsyncExitStack() as stack:
                pipelines = {}
                for label, overrides in variants(Path(tmp)).items():
                    pipeline = build_pipeline(proxy_config(overrides))
                    await stack.enter_async_context(pipeline.running())
                    for item in requests_of(300):  # warm-up: caches, metric children
                        await pipeline.acquire(item)
                    pipelines[label] = pipeline
                for _ in range(args.rounds):
                    for label, pipeline in pipelines.items():
                        spent = await one_round(pipeline, args.requests)
                        best[label] = min(best.get(label, spent), spent, key=lambda s: s[1])
        with tempfile.TemporaryDirectory() as tmp:
            parts = await components_us(Path(tmp))
    finally:
        root.handlers[:], level = saved
        root.setLevel(level)
        sink.close()
    rows = [(label, loop, total) for label, (loop, total) in best.items()]
    base_loop, base = rows[0][1], rows[0][2]
    lines = [
        f"In-process `Pipeline.acquire`, best of {args.rounds} rounds of {args.requests} "
        "requests per configuration, the configurations taking turns.",
        "",
        "| configuration | loop thread CPU us/request | process CPU us/request | over the baseline (process) | of which on the loop |",
        "| --- | ---: | ---: | ---: | ---: |",
    ]
    lines += [
        f"| {label} | {loop:.1f} | {total:.1f} | {total - base:+.1f} | {loop - base_loop:+.1f} |"
        for label, loop, total in rows
    ]
    lines += ["", "The decision log's parts, each alone on one thread (best of 5 x 2000):", ""]
    lines += [f"- {name}: {us:.1f} us" for name, us in parts.items()]
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
