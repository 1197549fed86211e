"""``make bench``: every benchmark suite, one after the other, printing Markdown.

Each suite is a module of this package with a ``main(argv)``; run one alone
with ``python -m bench.<name>``. Record what you run, and the command, in
bench/RESULTS.md.
"""

from __future__ import annotations

import asyncio
import importlib
import inspect
import sys

#: The side-by-side table of issue 17 first, then in the order of a request's way: the whole
#: pipeline, then its parts.
SUITES = (
    "sidebyside",
    "pipeline",
    "serving",
    "challenge",
    "playready_xml",
    "token",
    "access",
    "sessions",
    "policy",
    "vendors",
    "adapters",
    "signing",
    "admin",
    "observability",
    "guards",
)


def main(argv: list[str]) -> None:
    """Run the suites named in ``argv`` (all by default), each with its default options."""
    for name in argv or SUITES:
        print(f"\n## bench.{name}\n", flush=True)
        run = importlib.import_module(f"bench.{name}").main
        if inspect.iscoroutinefunction(run):
            asyncio.run(run([]))
        else:
            run([])


if __name__ == "__main__":
    main(sys.argv[1:])
