"""What the upstream client needs of a tracer: a span per vendor exchange (:mod:`proxy.telemetry`)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Protocol


class UpstreamTrace(Protocol):
    """The span of one exchange with a vendor (retries included)."""

    headers: Mapping[str, str]
    """``traceparent`` (and ``tracestate``) naming this span, for the vendor request."""

    def response(self, status: int) -> None:
        """The vendor answered with HTTP ``status``."""

    def finish(self, outcome: str) -> None:
        """The exchange is over: ``ok`` or a reason code."""


class UpstreamTracer(Protocol):
    """Opens the span of a vendor exchange."""

    def upstream(self, backend: str, method: str, url: str) -> UpstreamTrace:
        """Open the span of a vendor call (a child of the current stage span)."""


__all__ = ["UpstreamTrace", "UpstreamTracer"]
