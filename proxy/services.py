"""Shared services of one pipeline: the clock, the upstream HTTP client, the state store.

Plugins reach them as ``config.services`` in ``proxy_configure`` and as
``ctx.services`` per request. Tests swap the clock for one they drive.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any


class Clock:
    """Wall and monotonic time; replaced by :class:`proxy.testing.FakeClock` in tests."""

    def time(self) -> float:
        """Seconds since the epoch."""
        return time.time()

    def monotonic(self) -> float:
        """Seconds on a clock that never goes back."""
        return time.monotonic()


@dataclass
class Services:
    """What every plugin of a pipeline shares.

    :ivar clock: the time source; every time-based rule reads it.
    :ivar upstream: the pooled HTTP client the core uses to call vendors.
    :ivar state: the shared state store (``memory`` or Redis), once configured.
    """

    clock: Clock = field(default_factory=Clock)
    upstream: Any = None
    state: Any = None
