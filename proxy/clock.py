"""The time source every time-based rule reads; tests replace it with a clock they drive."""

from __future__ import annotations

import time


class Clock:
    """Wall and monotonic time; replaced by :class:`proxy.testing.FakeClock` in tests."""

    def time(self) -> float:
        """Seconds since the epoch."""
        return time.time()

    def monotonic(self) -> float:
        """Seconds on a clock that never goes back."""
        return time.monotonic()
