"""The in-process store: exact for one process, lost when it exits."""

from __future__ import annotations

import heapq
from collections.abc import Sequence
from dataclasses import replace
from typing import Any

from proxy.state.ops import (
    Op,
    Outcome,
    RateOp,
    Record,
    RecordMode,
    RecordOp,
    SessionMode,
    SessionOp,
    UseOp,
)
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

    def _contents(self, op: SessionOp, live: dict[str, float], now: float) -> dict[str, str]:
        """What each live session of ``op``'s set plays (entries of lapsed ones dropped)."""
        if op.content_key is None:
            return {}
        contents: dict[str, str] = self._get(self.prefix + op.content_key, now, {})
        return {s: c for s, c in contents.items() if s in live}

    @staticmethod
    def _plan_take(
        op: SessionOp, live: dict[str, float], contents: dict[str, str], now: float
    ) -> tuple[bool, float | None, list[str]]:
        """Whether a new session fits: (admitted, retry-after when refused, sessions to stop)."""
        ordered = sorted(live.items(), key=lambda item: (item[1], item[0]))
        same = [item for item in ordered if contents.get(item[0]) == op.content]
        subject_full = len(ordered) >= op.limit
        content_full = op.content_limit > 0 and len(same) >= op.content_limit
        if op.stopped_key is None:
            if subject_full:
                return False, (ordered[0][1] - now if ordered else None), []
            if content_full:
                return False, same[0][1] - now, []
            return True, None, []
        victims: list[str] = []
        count = len(ordered)
        if content_full:
            victims.append(same[0][0])
            count -= 1
        if count >= op.limit:
            rest = [s for s, _ in ordered if s not in victims]
            if not rest:
                return False, None, []
            victims.append(rest[0])
        return True, None, victims

    async def _apply(self, ops: Sequence[Op], now: float, commit: bool) -> Outcome:
        self._sweep(now)
        prefix = self.prefix
        keyed = [(prefix + op.key, op) for op in ops]
        rides = {
            index
            for index, (_, op) in enumerate(keyed)
            if isinstance(op, UseOp)
            and op.retry_key is not None
            and self._get(prefix + op.retry_key, now, 0) > 0
        }
        if not rides:
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
        victims: dict[int, list[str]] = {}
        for index, (key, op) in enumerate(keyed):
            if isinstance(op, UseOp):
                if index not in rides and self._get(key, now, 0) >= op.limit:
                    return Outcome(index)
            elif isinstance(op, SessionOp):
                live = self._sessions(key, now)
                if op.mode is SessionMode.TAKE and op.session not in live:
                    admitted, retry, stop = self._plan_take(
                        op, live, self._contents(op, live, now), now
                    )
                    if not admitted:
                        return Outcome(index, retry)
                    fresh.add(index)
                    victims[index] = stop
                elif (
                    op.mode is SessionMode.TOUCH
                    and op.stopped_key is not None
                    and op.session not in live
                    and op.session in self._sessions(prefix + op.stopped_key, now)
                ):
                    return Outcome(index)
        if not commit:
            return Outcome()
        taken: list[Op] = []
        for index, (key, op) in enumerate(keyed):
            if isinstance(op, UseOp):
                taken.append(self._spend(key, op, index in rides, now))
            elif isinstance(op, SessionOp):
                self._commit_session(key, op, victims.get(index, ()), now)
                if index in fresh:
                    taken.append(op)
            elif isinstance(op, RecordOp) and self._commit_record(key, op, now):
                taken.append(op)
        return Outcome(taken=tuple(taken))

    def _spend(self, key: str, op: UseOp, rides: bool, now: float) -> UseOp:
        """Spend a use (marking the retry key), or ride the use an earlier request spent."""
        if rides:
            assert op.retry_key is not None
            marker = self.prefix + op.retry_key
            holders, until = self._values[marker]
            self._values[marker] = (holders + 1, until)
            return replace(op, rides=True)
        entry = self._values.get(key)
        if entry is None or entry[1] <= now:
            self._set(key, 1, now + op.ttl)
        else:
            self._values[key] = (entry[0] + 1, entry[1])
        if op.retry_key is not None:
            self._set(self.prefix + op.retry_key, 1, now + op.retry_window)
        return op

    def _keep_sessions(
        self, key: str, sessions: dict[str, Any], expires: float, now: float
    ) -> None:
        if sessions:
            self._set(key, sessions, expires)
        elif key in self._values:
            self._values[key] = ({}, now)  # empty: swept when its entry comes up

    def _commit_session(self, key: str, op: SessionOp, victims: Sequence[str], now: float) -> None:
        sessions = self._sessions(key, now)
        contents = self._contents(op, sessions, now)
        stopped_key = None if op.stopped_key is None else self.prefix + op.stopped_key
        stopped = {} if stopped_key is None else self._sessions(stopped_key, now)
        if op.mode is SessionMode.RELEASE:
            sessions.pop(op.session, None)
            contents.pop(op.session, None)
            stopped.pop(op.session, None)
        elif op.mode is SessionMode.TAKE:
            for victim in victims:
                sessions.pop(victim, None)
                contents.pop(victim, None)
                stopped[victim] = now + op.ttl
            sessions[op.session] = now + op.ttl
            contents[op.session] = op.content
            stopped.pop(op.session, None)
        elif op.session in sessions:
            sessions[op.session] = now + op.ttl
        last = max(sessions.values(), default=now)
        self._keep_sessions(key, sessions, last, now)
        if op.content_key is not None:
            self._keep_sessions(self.prefix + op.content_key, contents, last, now)
        if stopped_key is not None:
            self._keep_sessions(stopped_key, stopped, max(stopped.values(), default=now), now)

    def _commit_record(self, key: str, op: RecordOp, now: float) -> bool:
        """Write ``op``; True when it began a record that was not there (undo removes it)."""
        entry = self._values.get(key)
        live = entry is not None and entry[1] > now
        if op.mode is RecordMode.BEGIN:
            started = entry[0][0] if live and entry is not None else now
            until = max(entry[1] if live and entry is not None else now, now + op.ttl)
            self._set(key, (started, op.payload), until)
            return not live
        if op.mode is RecordMode.EXTEND:
            if live and entry is not None:
                self._set(key, entry[0], max(entry[1], now + op.ttl))
            return False
        self._values.pop(key, None)
        return False

    async def records(self, keys: Sequence[str], *, now: float) -> list[Record | None]:
        """Each key's live record, or None."""
        found: list[Record | None] = []
        for key in keys:
            entry = self._values.get(self.prefix + key)
            if entry is None or entry[1] <= now:
                found.append(None)
            else:
                found.append(Record(entry[0][0], entry[1], entry[0][1]))
        return found

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
            if isinstance(op, UseOp):
                self._give_back_use(key, op)
                continue
            entry = self._values.get(key)
            if isinstance(op, SessionOp) and entry is not None:
                entry[0].pop(op.session, None)
                if op.content_key is not None:
                    contents = self._values.get(self.prefix + op.content_key)
                    if contents is not None:
                        contents[0].pop(op.session, None)
            elif isinstance(op, RecordOp):
                self._values.pop(key, None)

    def _give_back_use(self, key: str, op: UseOp) -> None:
        """The use goes back when the last request riding on it is given back."""
        give_back = not op.rides
        if op.retry_key is not None:
            marker = self.prefix + op.retry_key
            entry = self._values.get(marker)
            if entry is not None:
                holders = entry[0] - 1
                if holders > 0:
                    self._values[marker] = (holders, entry[1])
                    give_back = False
                else:
                    del self._values[marker]
                    give_back = True
        used = self._values.get(key)
        if give_back and used is not None and used[0] > 0:
            self._values[key] = (used[0] - 1, used[1])
