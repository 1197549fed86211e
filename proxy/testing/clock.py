"""A clock tests move by hand."""

from __future__ import annotations

from proxy.clock import Clock


class FakeClock(Clock):
    """A clock the test moves by hand: ``clock.advance(30)``."""

    def __init__(self, start: float = 1_800_000_000.0) -> None:
        self.now = start
        self.mono = 10_000.0

    def time(self) -> float:
        """The fake wall time."""
        return self.now

    def monotonic(self) -> float:
        """The fake monotonic time."""
        return self.mono

    def advance(self, seconds: float) -> None:
        """Move both clocks forward."""
        self.now += seconds
        self.mono += seconds
