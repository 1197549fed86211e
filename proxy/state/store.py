"""The store interface every backend implements, with its metrics."""

from __future__ import annotations

import time
from abc import ABC, abstractmethod
from collections.abc import Sequence

from prometheus_client import Counter, Histogram

from proxy.state.ops import Op, Outcome, Record, StateUnavailable

STATE_CALLS = Counter(
    "license_proxy_state_calls",
    "Batches the state store evaluated, by store and outcome (ok, denied, error).",
    ["store", "outcome"],
)
STATE_UNREPLICATED = Counter(
    "license_proxy_state_unreplicated",
    "State writes that fewer replicas than access.state.replica_acks confirmed in time.",
    ["store"],
)
STATE_SECONDS = Histogram(
    "license_proxy_state_seconds",
    "Wall time of one state store batch (one Redis round trip for the redis store).",
    ["store"],
    buckets=(0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1),
)


class StateStore(ABC):
    """Where the state rules keep their counters; see the module docstring for the meaning.

    :param prefix: prepended to every key, so several deployments can share one Redis.
    """

    kind = "abstract"

    def __init__(self, prefix: str = "") -> None:
        self.prefix = prefix
        self._seconds = STATE_SECONDS.labels(self.kind)
        self._calls = {o: STATE_CALLS.labels(self.kind, o) for o in ("ok", "denied", "error")}

    @abstractmethod
    async def start(self) -> None:
        """Open connections (inside the serving loop)."""

    @abstractmethod
    async def close(self) -> None:
        """Close connections."""

    async def apply(self, ops: Sequence[Op], *, now: float, commit: bool = True) -> Outcome:
        """Evaluate ``ops`` atomically at time ``now``; write only when ``commit`` and admitted.

        Raises :class:`StateUnavailable` when the store can't answer.
        """
        started = time.perf_counter()
        try:
            outcome = await self._apply(ops, now, commit)
        except StateUnavailable:
            self._calls["error"].inc()
            raise
        self._seconds.observe(time.perf_counter() - started)
        self._calls["ok" if outcome.denied is None else "denied"].inc()
        return outcome

    async def undo(self, ops: Sequence[Op]) -> None:
        """Give back what :meth:`apply` took (``Outcome.taken``): a use, a new session, a new
        record.

        Raises :class:`StateUnavailable` when the store can't answer.
        """
        if ops:
            await self._undo(ops)

    @abstractmethod
    async def records(self, keys: Sequence[str], *, now: float) -> list[Record | None]:
        """For each of ``keys``, its live record (as :class:`RecordOp` keeps them), or None.
        One round trip. Raises :class:`StateUnavailable`."""

    # -- operator actions (the admin API): marks and session sets, one key at a time ----------

    @abstractmethod
    async def put_mark(self, key: str, *, until: float, now: float) -> None:
        """Mark ``key`` until ``until`` (seconds since the epoch), e.g. a revocation; a mark
        already there is replaced. Raises :class:`StateUnavailable`."""

    @abstractmethod
    async def marks(self, keys: Sequence[str], *, now: float) -> list[float | None]:
        """For each of ``keys``, when its mark lapses, or None when it has none (or it lapsed
        by ``now``). One round trip. Raises :class:`StateUnavailable`."""

    @abstractmethod
    async def clear_mark(self, key: str) -> bool:
        """Remove the mark on ``key``; True when there was one. Raises :class:`StateUnavailable`."""

    @abstractmethod
    async def sessions(self, key: str, *, now: float) -> dict[str, float]:
        """The live sessions of the set ``key`` (as :class:`SessionOp` keeps them), each with
        the time it lapses. Raises :class:`StateUnavailable`."""

    @abstractmethod
    async def end_sessions(
        self, key: str, sessions: Sequence[str] | None = None, *, now: float
    ) -> int:
        """End ``sessions`` of the set ``key`` (every one when None): their slots are free at
        once. The number of live sessions ended. Raises :class:`StateUnavailable`."""

    @abstractmethod
    async def _apply(self, ops: Sequence[Op], now: float, commit: bool) -> Outcome: ...

    @abstractmethod
    async def _undo(self, ops: Sequence[Op]) -> None: ...

    def describe(self) -> str:
        """A short description for logs (never a password)."""
        return self.kind

    @property
    def mode(self) -> str:
        """How the store is reached (``memory``, ``single``, ``cluster``, ``sentinel``)."""
        return self.kind
