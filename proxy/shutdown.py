"""Shutdown within its grace, with a typed answer for every request still in flight.

Left to themselves, the transports end a drain badly: grpc.aio cancels what is
left when its grace runs out and sends a bare UNAVAILABLE ("Cancelling all
calls"), and aiohttp waits its timeout once for a handler and then once more
after cancelling it, and drops the connection with no answer. So each request
of either transport runs inside a :class:`Drain`: once a shutdown begins, every
request in flight (and any that still arrives) is cut at the deadline with
:func:`shutdown_error`, a ``ProxyError`` the transports answer like any other,
while the listeners wait a short margin past the deadline for those answers to
go out.
"""

from __future__ import annotations

import asyncio
from types import TracebackType

from proxy.errors import ProxyError, Reason

#: How long past the deadline the listeners wait for the typed answers to be written.
ANSWER_MARGIN = 1.0
#: How long closing the pipelines' resources (upstream pool, key refreshes, state store)
#: may take once the listeners are closed.
CLOSE_MARGIN = 1.0


def shutdown_error(grace: float) -> ProxyError:
    """What a request still in flight when the grace runs out is answered with: retryable,
    since another instance (or this one, restarted) can serve it."""
    return ProxyError(
        Reason.UPSTREAM_TIMEOUT,
        f"the proxy is shutting down and the request did not finish within {grace:g} s",
        metadata={"cause": "shutdown"},
        retry_after=1.0,
    )


class Drain:
    """The requests in flight on both transports, and the deadline a shutdown sets them.

    ``async with drain.request():`` around a request's handling; :meth:`begin` when
    the shutdown starts. While the proxy serves, a request costs a set insertion and
    removal; the cut at the deadline cancels each request's task, and the guard turns
    that cancellation (and only that one) into :func:`shutdown_error`.
    """

    def __init__(self) -> None:
        self._deadline: float | None = None
        self._grace = 0.0
        self._tasks: set[asyncio.Task[object]] = set()
        self._cut: set[asyncio.Task[object]] = set()
        self._timer: asyncio.TimerHandle | None = None

    @property
    def draining(self) -> bool:
        """True once a shutdown has begun."""
        return self._deadline is not None

    @property
    def in_flight(self) -> int:
        """How many requests are being handled."""
        return len(self._tasks)

    def request(self) -> _Guard:
        """A guard for one request: ``async with drain.request(): ...``."""
        return _Guard(self)

    def begin(self, grace: float) -> float:
        """Cut every request still in flight ``grace`` seconds from now (the loop's clock),
        and any that arrives later at once; returns that deadline."""
        loop = asyncio.get_running_loop()
        self._grace = grace
        self._deadline = loop.time() + grace
        if self._timer is None:
            self._timer = loop.call_at(self._deadline, self._cut_all)
        return self._deadline

    def _cut_all(self) -> None:
        for task in self._tasks:
            self._cut_one(task)

    def _cut_one(self, task: asyncio.Task[object]) -> None:
        if task not in self._cut:
            self._cut.add(task)
            task.cancel()

    def _enter(self, task: asyncio.Task[object]) -> None:
        self._tasks.add(task)
        if self._deadline is not None and asyncio.get_running_loop().time() >= self._deadline:
            self._cut_one(task)  # arrived after the deadline

    def _exit(self, task: asyncio.Task[object], cancelled: bool) -> None:
        self._tasks.discard(task)
        if task in self._cut:
            self._cut.discard(task)
            task.uncancel()
            if cancelled:
                raise shutdown_error(self._grace) from None


class _Guard:
    """One request's place in a :class:`Drain` (an async context manager)."""

    __slots__ = ("_drain", "_task")

    def __init__(self, drain: Drain) -> None:
        self._drain = drain

    async def __aenter__(self) -> None:
        task = asyncio.current_task()
        assert task is not None  # requests run in tasks
        self._task = task
        self._drain._enter(task)

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._drain._exit(self._task, exc_type is asyncio.CancelledError)


__all__ = ["ANSWER_MARGIN", "CLOSE_MARGIN", "Drain", "shutdown_error"]
