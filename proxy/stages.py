"""When each pipeline stage of one request began and how long it took.

The pipeline calls :meth:`StageClock.enter` as a request moves from one stage
to the next (``inspect``, ``authenticate``, ... ``issue``) and :meth:`StageClock.stop`
once the answer is known, before the observers run; :meth:`StageClock.close`
when the request is over. A mark is one ``time.perf_counter()`` call and a list
append (about 100 ns), so every request keeps its stage times: the decision log
reads them in the observers, and the telemetry subclass turns the same calls
into one span per stage (:mod:`proxy.telemetry`).
"""

from __future__ import annotations

from time import perf_counter
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from proxy.errors import ProxyError

#: The stages of a license request, in pipeline order (a request stops early when denied;
#: a dry run ends after ``select_backends``).
STAGES: tuple[str, ...] = (
    "inspect",
    "authenticate",
    "authorize",
    "select_policy",
    "authorize_policy",
    "select_backends",
    "issue",
)


class StageClock:
    """The stage marks of one request (the base class records times only)."""

    __slots__ = ("_marks", "_names", "started", "stopped")

    def __init__(self) -> None:
        self.started = perf_counter()
        self.stopped: float | None = None
        self._names: list[str] = []
        self._marks: list[float] = []

    def enter(self, stage: str) -> None:
        """The request moves on to ``stage`` (the previous stage ends now)."""
        self._names.append(stage)
        self._marks.append(perf_counter())

    def stop(self, error: ProxyError | None = None) -> None:
        """The answer is known (``error`` when refused): the last stage ends now. Idempotent."""
        if self.stopped is None:
            self.stopped = perf_counter()

    def close(self, ctx: Any) -> None:
        """The request is over (observers included); ``ctx`` is its
        :class:`~proxy.model.RequestContext` (typed loosely: the model holds this clock)."""

    @property
    def stage(self) -> str | None:
        """The stage the request reached last (where a denied request stopped)."""
        return self._names[-1] if self._names else None

    def durations(self) -> dict[str, float]:
        """Seconds spent in each stage entered, in order, and ``total`` (start to stop)."""
        end = self.stopped if self.stopped is not None else perf_counter()
        marks = self._marks
        spent = {
            name: (marks[i + 1] if i + 1 < len(marks) else end) - mark
            for i, (name, mark) in enumerate(zip(self._names, marks, strict=True))
        }
        spent["total"] = end - self.started
        return spent

    def microseconds(self) -> dict[str, int]:
        """:meth:`durations` in whole microseconds (what the decision log writes)."""
        end = self.stopped if self.stopped is not None else perf_counter()
        marks = [*self._marks, end]
        spent = {name: int((marks[i + 1] - marks[i]) * 1e6) for i, name in enumerate(self._names)}
        spent["total"] = int((end - self.started) * 1e6)
        return spent


__all__ = ["STAGES", "StageClock"]
