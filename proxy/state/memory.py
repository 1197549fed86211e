"""The in-process store: exact for one process, lost when it exits."""

from __future__ import annotations

import heapq
from collections.abc import Sequence
from typing import Any

from proxy.state.ops import Op, Outcome, RateOp, SessionMode, SessionOp, UseOp
from proxy.state.store import StateStore

#: Expired entries removed per batch at most, so one request never pays for a big sweep.
_SWEEP_BATCH = 64


class MemoryStore(StateStore):
    """State in this process's memory: exact for one process, lost when it exits.

    Every pipeline of the process with the same prefix shares one store while
    any of them runs (:meth:`shared`), so a configuration reload keeps every
    counter. A batch runs without awaiting, so it is atomic on the event loop.
    """

    kind = "memory"
    _live: dict[str, MemoryStore] = {}

    def __init__(self, prefix: str = "") -> None:
        super().__init__(prefix)
        self._values: dict[str, tuple[Any, float]] = {}
        self._expiries: list[tuple[float, str]] = []
        self._users = 0

    @classmethod
    def shared(cls, prefix: str = "") -> MemoryStore:
        """The running store for ``prefix``, or a new one (registered when it starts)."""
        live = cls._live.get(prefix)
        return live if live is not None else cls(prefix)

    async def start(self) -> None:
        """Register as the process's store for this prefix."""
        self._users += 1
        self._live.setdefault(self.prefix, self)

    async def close(self) -> None:
        """Unregister when the last pipeline using this store stops."""
        self._users = max(0, self._users - 1)
        if self._users == 0 and self._live.get(self.prefix) is self:
            del self._live[self.prefix]

    def __len__(self) -> int:
        return len(self._values)

    def _get(self, key: str, now: float, default: Any) -> Any:
        entry = self._values.get(key)
        if entry is None or entry[1] <= now:
            return default
        return entry[0]

    def _set(self, key: str, value: Any, expires: float) -> None:
        # One heap entry per key: a key already scheduled is rescheduled when its entry
        # comes up (see _sweep), so a busy key doesn't grow the heap on every request.
        if key not in self._values:
            heapq.heappush(self._expiries, (expires, key))
        self._values[key] = (value, expires)

    def _sweep(self, now: float) -> None:
        heap = self._expiries
        for _ in range(_SWEEP_BATCH):
            if not heap or heap[0][0] > now:
                return
            _, key = heapq.heappop(heap)
            entry = self._values.get(key)
            if entry is None:
                continue
            if entry[1] <= now:
                del self._values[key]
            else:
                heapq.heappush(heap, (entry[1], key))

    def _sessions(self, key: str, now: float) -> dict[str, float]:
        sessions: dict[str, float] = self._get(key, now, {})
        return {s: e for s, e in sessions.items() if e > now}

    async def _apply(self, ops: Sequence[Op], now: float, commit: bool) -> Outcome:
        self._sweep(now)
        keyed = [(self.prefix + op.key, op) for op in ops]
        buckets: list[tuple[str, RateOp, float]] = []
        for index, (key, op) in enumerate(keyed):
            if isinstance(op, RateOp):
                tat = max(self._get(key, now, now), now)
                tolerance = op.interval * (op.burst - 1)
                if tat - now > tolerance:
                    return Outcome(index, tat - now - tolerance)
                buckets.append((key, op, tat))
        for key, op, tat in buckets:
            self._set(key, tat + op.interval, tat + op.interval)
        fresh: set[int] = set()
        for index, (key, op) in enumerate(keyed):
            if isinstance(op, UseOp):
                if self._get(key, now, 0) >= op.limit:
                    return Outcome(index)
            elif isinstance(op, SessionOp) and op.mode is SessionMode.TAKE:
                sessions = self._sessions(key, now)
                if op.session not in sessions:
                    if len(sessions) >= op.limit:
                        retry = min(sessions.values()) - now if sessions else None
                        return Outcome(index, retry)
                    fresh.add(index)
        if not commit:
            return Outcome()
        taken: list[Op] = []
        for index, (key, op) in enumerate(keyed):
            if isinstance(op, UseOp):
                entry = self._values.get(key)
                if entry is None or entry[1] <= now:
                    self._set(key, 1, now + op.ttl)
                else:
                    self._values[key] = (entry[0] + 1, entry[1])
                taken.append(op)
            elif isinstance(op, SessionOp):
                sessions = self._sessions(key, now)
                if op.mode is SessionMode.RELEASE:
                    sessions.pop(op.session, None)
                elif op.mode is SessionMode.TAKE or op.session in sessions:
                    sessions[op.session] = now + op.ttl
                if sessions:
                    self._set(key, sessions, max(sessions.values()))
                elif key in self._values:
                    self._values[key] = ({}, now)  # empty: swept when its entry comes up
                if index in fresh:
                    taken.append(op)
        return Outcome(taken=tuple(taken))

    async def put_mark(self, key: str, *, until: float, now: float) -> None:
        """Mark ``key`` until ``until``."""
        self._sweep(now)
        self._set(self.prefix + key, until, until)

    async def marks(self, keys: Sequence[str], *, now: float) -> list[float | None]:
        """When each key's mark lapses, or None."""
        return [self._get(self.prefix + key, now, None) for key in keys]

    async def clear_mark(self, key: str) -> bool:
        """Remove a mark (its heap entry is dropped when it comes up)."""
        return self._values.pop(self.prefix + key, None) is not None

    async def sessions(self, key: str, *, now: float) -> dict[str, float]:
        """The live sessions of a set."""
        return self._sessions(self.prefix + key, now)

    async def end_sessions(
        self, key: str, sessions: Sequence[str] | None = None, *, now: float
    ) -> int:
        """End some or all sessions of a set."""
        key = self.prefix + key
        live = self._sessions(key, now)
        ended = set(live) if sessions is None else set(sessions) & set(live)
        remaining = {s: e for s, e in live.items() if s not in ended}
        if key in self._values:
            self._values[key] = (remaining, max(remaining.values(), default=now))
        return len(ended)

    async def _undo(self, ops: Sequence[Op]) -> None:
        for op in ops:
            key = self.prefix + op.key
            entry = self._values.get(key)
            if entry is None:
                continue
            if isinstance(op, UseOp) and entry[0] > 0:
                self._values[key] = (entry[0] - 1, entry[1])
            elif isinstance(op, SessionOp):
                entry[0].pop(op.session, None)
