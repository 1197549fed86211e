"""Fuzz every challenge parser for a bounded time, then report the worst time per KiB.

    python -m bench.fuzz --seconds 60 [--target widevine ...]

Each target runs in its own process: coverage-guided with atheris (libFuzzer)
when it is installed, else a random-mutation loop over the same seeds. The
inputs either engine kept (its corpus, in ``.fuzz/<target>/corpus``) are then
re-run here, uninstrumented, and timed; each is also repeated up to the DRM's
default size limit, so a parse that grows faster than linearly shows up. An
input that raised anything but CHALLENGE_INVALID is saved as
``.fuzz/<target>/crash-*`` and listed: turn it into a regression test in
``tests/data/fuzz/``.

Sizes under 1 KiB count as 1 KiB (a parse has a fixed cost whatever the size).
"""

from __future__ import annotations

import argparse
import hashlib
import os
import random
import re
import statistics
import subprocess
import sys
import time
import traceback
from contextlib import suppress
from dataclasses import dataclass, field
from pathlib import Path

# Nothing from `proxy` is imported at module level: a worker must instrument
# those modules before their first import, or atheris sees no coverage.

ROOT = Path(__file__).resolve().parent.parent
WORK = ROOT / ".fuzz"
#: The largest input per target: the DRM's default ``server.max_challenge_bytes``.
LIMITS = {
    "widevine": 64 * 1024,
    "playready": 128 * 1024,
    "fairplay": 64 * 1024,
    "clearkey": 16 * 1024,
    "pssh": 64 * 1024,
    "fairplay_content_id": 2 * 1024,
    "initdata": 128 * 1024,
}
DATA_SEEDS = {
    "playready": ["tests/data/playready/ms_docs_license_server_AcquireLicense_request.xml"],
    "pssh": ["tests/data/pssh/*.bin", "tests/data/clearkey/*.bin"],
    "clearkey": ["tests/data/clearkey/w3c_eme_license_*.json"],
    "initdata": [
        "tests/data/pssh/*.bin",
        "tests/data/playready/ms_docs_header_spec_PRO_*.bin",
        "tests/data/playready/ms_docs_header_spec_0[3469]_*.xml",
        "tests/data/clearkey/w3c_keyids_initdata_format_example.json",
    ],
}
#: How many times a target's fuzzer is started again after it stopped on a crash.
RESTARTS = 5
#: Corpus inputs also timed repeated up to the size limit.
GROWTH_SAMPLE = 200


def seeds(target: str) -> list[bytes]:
    """Built seeds plus the real samples in tests/data for this target."""
    from proxy.challenge.samples import seed_challenges

    out = list(seed_challenges().get(target, []))
    if target == "fairplay_content_id":
        out += [b"skd://4060a865-8878-4267-9cbf-91ae5bae1e72:0123456789abcdef0123456789abcdef"]
        out += [b"skd://host/FairPlay/?kid=4060a865-8878-4267-9cbf-91ae5bae1e72"]
    for pattern in DATA_SEEDS.get(target, []):
        out += [p.read_bytes() for p in sorted(ROOT.glob(pattern))]
    return out


def _save(directory: Path, data: bytes, prefix: str = "") -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / (prefix + hashlib.sha1(data, usedforsecurity=False).hexdigest())
    if not path.exists():
        path.write_bytes(data)
    return path


# -- worker: one target, one engine ----------------------------------------------------------


def _worker(target: str, seconds: float, engine: str) -> None:
    home = WORK / target
    corpus = home / "corpus"
    if engine == "atheris":
        _atheris(target, seconds, home, corpus)
    else:
        for seed in seeds(target):
            _save(corpus, seed)
        _random_mutation(target, seconds, home, corpus)


def _atheris(target: str, seconds: float, home: Path, corpus: Path) -> None:
    import atheris

    with atheris.instrument_imports(include=["proxy", "defusedxml"]):
        from proxy.challenge.targets import run_target
    for seed in seeds(target):
        _save(corpus, seed)

    def test_one_input(data: bytes) -> None:
        run_target(target, data)

    args = [
        sys.argv[0],
        f"-max_total_time={int(seconds)}",
        f"-max_len={LIMITS[target]}",
        "-timeout=10",
        "-rss_limit_mb=2048",
        f"-artifact_prefix={home}/",
        str(corpus),
    ]
    atheris.Setup(args, test_one_input)
    atheris.Fuzz()


def _mutate(rng: random.Random, data: bytes, limit: int) -> bytes:
    out = bytearray(data)
    for _ in range(rng.randint(1, 8)):
        at = rng.randint(0, len(out))
        kind = rng.randrange(6)
        if kind == 0 and out:
            out[min(at, len(out) - 1)] = rng.randrange(256)
        elif kind == 1:
            del out[at : at + rng.randint(1, 64)]
        elif kind == 2:
            out[at:at] = rng.randbytes(rng.randint(1, 32))
        elif kind == 3:
            out[at:at] = out[at : at + rng.randint(1, 512)]
        elif kind == 4:
            del out[at:]
        else:
            out[at:at] = rng.choice([b"\x00", b"\xff", b"<", b">", b"{", b"}", b"=", b"&", b"\x08"])
    return bytes(out[:limit])


def _random_mutation(target: str, seconds: float, home: Path, corpus: Path) -> None:
    """The fallback engine: random edits of the seeds and of what was kept, no coverage."""
    from proxy.challenge.targets import run_target

    rng = random.Random(int.from_bytes(os.urandom(8), "big"))
    pool = [p.read_bytes() for p in corpus.iterdir()]
    deadline = time.monotonic() + seconds
    runs = 0
    while time.monotonic() < deadline:
        data = _mutate(rng, rng.choice(pool), LIMITS[target])
        runs += 1
        try:
            accepted = run_target(target, data) is not None
        except Exception:
            path = _save(home, data, "crash-")
            print(f"==crash== {path}\n{traceback.format_exc()}", file=sys.stderr)
            continue
        if accepted or rng.random() < 0.002:
            pool.append(data)
            _save(corpus, data)
    print(f"Done {runs} runs in {int(seconds)} second(s)", file=sys.stderr)


# -- parent: run each target, then time what was found ---------------------------------------


@dataclass
class Report:
    """What one target's run found."""

    target: str
    engine: str
    runs: int = 0
    corpus: int = 0
    crashes: list[str] = field(default_factory=list)
    worst_us_per_kib: float = 0.0
    worst_size: int = 0
    median_us_per_kib: float = 0.0


def _time_once(run, target: str, data: bytes) -> float:
    best = float("inf")
    for _ in range(3):
        start = time.perf_counter_ns()
        with suppress(Exception):  # a crash is reported separately; its time still counts
            run(target, data)
        best = min(best, time.perf_counter_ns() - start)
    return best / 1000 / max(len(data) / 1024, 1.0)


def _measure(report: Report, home: Path) -> None:
    from proxy.challenge.targets import run_target

    inputs = [p.read_bytes() for p in sorted((home / "corpus").iterdir())]
    report.corpus = len(inputs)
    for path in sorted(home.glob("crash-*")) + sorted(home.glob("timeout-*")):
        data = path.read_bytes()
        try:
            run_target(report.target, data)
        except Exception as exc:
            report.crashes.append(f"{path.relative_to(ROOT)}: {type(exc).__name__}")
    rng = random.Random(7)
    grown = []
    limit = LIMITS[report.target]
    for data in rng.sample(inputs, min(GROWTH_SAMPLE, len(inputs))):
        if data:
            grown.append((data * (limit // len(data) + 1))[:limit])
    timings = [(_time_once(run_target, report.target, d), len(d)) for d in inputs + grown]
    if timings:
        worst = max(timings)
        report.worst_us_per_kib, report.worst_size = worst
        report.median_us_per_kib = statistics.median(t for t, _ in timings)


def _engine() -> str:
    try:
        import atheris  # noqa: F401
    except ImportError:
        return "random-mutation"
    return "atheris"


def run(targets: list[str], seconds: float, engine: str = "auto") -> list[Report]:
    """Fuzz each target in its own process, then time its corpus here."""
    engine = _engine() if engine == "auto" else engine
    reports = []
    for target in targets:
        home = WORK / target
        home.mkdir(parents=True, exist_ok=True)
        report = Report(target, engine)
        deadline = time.monotonic() + seconds
        # libFuzzer stops at its first crash: start it again (from its corpus) while
        # time is left, a few times at most, so one shallow bug does not hide the rest.
        for attempt in range(RESTARTS):
            left = deadline - time.monotonic()
            if left < 1:
                break
            log = home / f"fuzz-{attempt}.log"
            command = [sys.executable, "-m", "bench.fuzz", "--worker", target]
            command += ["--seconds", str(int(left)), "--engine", engine]
            with log.open("w") as out:
                subprocess.run(command, cwd=ROOT, stdout=out, stderr=subprocess.STDOUT, check=False)
            text = log.read_text(errors="replace")
            report.runs += sum(int(n) for n in re.findall(r"Done (\d+) runs", text))
            if "crash-" not in text and "timeout-" not in text:
                break
        _measure(report, home)
        reports.append(report)
        print(_line(report), flush=True)
    return reports


HEADER = (
    f"{'target':<20} {'engine':<15} {'runs':>9} {'corpus':>7} {'crashes':>7} "
    f"{'worst us/KiB':>12} {'at bytes':>9} {'median us/KiB':>13}"
)


def _line(r: Report) -> str:
    return (
        f"{r.target:<20} {r.engine:<15} {r.runs:>9} {r.corpus:>7} {len(r.crashes):>7} "
        f"{r.worst_us_per_kib:>12.1f} {r.worst_size:>9} {r.median_us_per_kib:>13.1f}"
    )


def main(argv: list[str] | None = None) -> int:
    """Fuzz the targets named (default: all) and print one line each; exit 1 on any crash."""
    parser = argparse.ArgumentParser(prog="python -m bench.fuzz", description=__doc__)
    parser.add_argument("--seconds", type=float, default=60, help="fuzzing time per target")
    parser.add_argument("--target", action="append", choices=sorted(LIMITS))
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    parser.add_argument(
        "--engine",
        choices=["auto", "atheris", "random-mutation"],
        default="auto",
        help="auto: atheris when installed, else random mutation",
    )
    args = parser.parse_args(argv)
    if args.worker:
        _worker(args.worker, args.seconds, args.engine)
        return 0
    print(f"fuzzing {args.seconds:g}s per target; times are per KiB, inputs under 1 KiB count as 1")
    print(HEADER, flush=True)
    reports = run(args.target or sorted(LIMITS), args.seconds, args.engine)
    crashes = [c for r in reports for c in r.crashes]
    for crash in crashes:
        print(f"crash: {crash}")
    worst = max(reports, key=lambda r: r.worst_us_per_kib)
    print(f"worst over all targets: {worst.worst_us_per_kib:.1f} us/KiB ({worst.target})")
    return 1 if crashes else 0


if __name__ == "__main__":
    sys.exit(main())
