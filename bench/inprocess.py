"""The pipeline alone, in this process: CPU per ClearKey request with no transport at all.

``python -m bench.inprocess [--requests N] [--rounds R]`` builds the embedded
default's pipeline and awaits ``Pipeline.acquire`` N times per round; it prints the
best round's CPU microseconds per request (process time, so other processes on the
machine disturb it little, and the best round least). Run it from two checkouts
(``PYTHONPATH=<other checkout> python -m bench.inprocess``) to compare revisions on one
machine: the figure depends on the code, not on the transports.

``--before CHECKOUT`` measures another revision's checkout too (with its generated
code), alternating the two in fresh interpreters three times, on this venv's
dependencies: a before/after pair from one run.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import time
import uuid
from pathlib import Path

from proxy.builder import build_pipeline, embedded_default
from proxy.encoding import b64url_encode
from proxy.model import LicenseRequest

KID = uuid.UUID("4060a865-8878-4267-9cbf-91ae5bae1e72").bytes
CHALLENGE = json.dumps({"kids": [b64url_encode(KID)], "type": "temporary"}).encode()


def _token() -> str:
    try:
        from proxy.tokens import development_token
    except ImportError:  # revisions before the core minted development tokens
        from plugins.token.mint import development_token  # type: ignore[import-not-found,no-redef]
    return development_token(ttl=86400)


async def measure(requests: int, rounds: int) -> list[float]:
    """CPU microseconds per request, one figure per round."""
    pipeline = build_pipeline(embedded_default())
    token = _token()
    figures = []
    async with pipeline.running():
        for _ in range(rounds):
            started = time.process_time()
            for i in range(requests):
                await pipeline.acquire(
                    LicenseRequest(challenge=CHALLENGE, token=token, request_id=f"b{i}")
                )
            figures.append((time.process_time() - started) / requests * 1e6)
    return figures


def _in_fresh_interpreter(checkout: str, requests: int, rounds: int) -> str:
    """This measurement in a new interpreter that imports the code of ``checkout``."""
    # Not run as a script: its folder would join sys.path, and bench/token.py would shadow
    # the standard library's token module.
    env = {**os.environ, "PYTHONPATH": checkout}
    code = (
        "import runpy, sys; sys.argv = ['inprocess', '--requests', sys.argv[1], '--rounds', "
        "sys.argv[2]]; runpy.run_path(__file__, run_name='__main__')"
    )
    argv = [sys.executable, "-c", code.replace("__file__", repr(str(Path(__file__).resolve())))]
    result = subprocess.run(
        [*argv, str(requests), str(rounds)],
        cwd="/",
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    return result.stdout.strip().splitlines()[-1]


def main(argv: list[str] | None = None) -> None:
    """Run and print the best and every round."""
    parser = argparse.ArgumentParser(prog="python -m bench.inprocess", description=__doc__)
    parser.add_argument("--requests", type=int, default=5000)
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--before", metavar="CHECKOUT", help="compare with another checkout")
    args = parser.parse_args(argv)
    if args.before:
        here = str(Path(__file__).resolve().parent.parent)
        for _ in range(3):
            for label, checkout in (("before", args.before), ("after ", here)):
                print(f"{label}: {_in_fresh_interpreter(checkout, args.requests, args.rounds)}")
        return
    figures = asyncio.run(measure(args.requests, args.rounds))
    rounds = ", ".join(f"{f:.1f}" for f in figures)
    print(f"pipeline in-process: best {min(figures):.1f} us CPU per request (rounds: {rounds})")


if __name__ == "__main__":
    main()
