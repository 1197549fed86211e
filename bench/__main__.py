"""``make bench``: every benchmark suite, one after the other, printing Markdown.

Each suite is a module of this package with a ``main(argv)``; run one alone
with ``python -m bench.<name>``. Record what you run, and the command, in
bench/RESULTS.md.
"""

from __future__ import annotations

import importlib
import sys

SUITES = ("pipeline",)


def main(argv: list[str]) -> None:
    """Run the suites named in ``argv`` (all by default)."""
    for name in argv or SUITES:
        print(f"\n## bench.{name}\n", flush=True)
        importlib.import_module(f"bench.{name}").main([])


if __name__ == "__main__":
    main(sys.argv[1:])
