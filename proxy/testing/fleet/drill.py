"""A failover drill: load on a state store while a master dies, counting what went wrong.

Workers send what a license request sends (a token use and a new session for
one of many subjects, the keys tagged by subject as the rules tag them) and
now and then replay a token already admitted. Part way through, ``kill``
takes a master down; the workers keep going through the gap and until
``recovered`` says a new master serves, then for ``after`` more rounds.
The report counts every answer, and the **over-admissions**: sessions
admitted beyond a subject's limit and tokens admitted twice, which happen only
when the dead master had acknowledged writes its replica never received.

Tests assert on the report; ``bench.access`` prints it.
"""

from __future__ import annotations

import asyncio
import hashlib
import itertools
from collections import Counter, defaultdict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from proxy.state import Op, SessionOp, StateStore, StateUnavailable, UseOp

#: Seconds any one store call may take before the drill calls it hung (far above any
#: store timeout: the drill must end even when a store misbehaves).
HANG_BOUND = 30.0


def subject_tag(subject: str) -> str:
    """The hash tag the rules give a subject's keys (see ``plugins.access.claims.slot_tag``)."""
    return "{" + hashlib.blake2b(subject.encode(), digest_size=8).hexdigest() + "}"


@dataclass
class DrillReport:
    """What a drill saw."""

    answers: Counter[str] = field(default_factory=Counter)
    """``admitted``, ``refused`` (over the limit or replayed) and ``unavailable``, by count."""
    over_admitted_sessions: int = 0
    """Sessions admitted beyond a subject's limit."""
    over_admitted_uses: int = 0
    """Tokens admitted more than once."""
    hung: int = 0
    """Calls that took longer than :data:`HANG_BOUND` (the store's own timeout failed)."""
    slowest: float = 0.0
    """Seconds of the slowest call, any answer."""
    unavailable_after_recovery: int = 0
    """Calls answered ``unavailable`` once ``recovered`` said a master serves again and the
    store had answered since (a proxy that does not find the new master shows here)."""

    @property
    def over_admissions(self) -> int:
        """Sessions plus uses admitted beyond their limits."""
        return self.over_admitted_sessions + self.over_admitted_uses

    def line(self) -> str:
        """One line for logs and benchmarks."""
        total = sum(self.answers.values())
        return (
            f"{total} calls: {self.answers['admitted']} admitted, {self.answers['refused']} "
            f"refused, {self.answers['unavailable']} unavailable; over-admissions "
            f"{self.over_admissions} ({self.over_admitted_sessions} sessions, "
            f"{self.over_admitted_uses} uses); slowest call {self.slowest * 1000:.0f} ms"
        )


async def failover_drill(
    store: StateStore,
    kill: Callable[[], object],
    recovered: Callable[[], Awaitable[object]],
    *,
    now: Callable[[], float],
    subjects: int = 64,
    limit: int = 4,
    workers: int = 16,
    before: int = 200,
    after: int = 200,
) -> DrillReport:
    """Run the drill on ``store`` (see the module docstring).

    :param kill: takes the master down (called once, after ``before`` calls).
    :param recovered: returns once a new master serves (polled by the caller's own means).
    :param now: the clock the calls pass to the store.
    :param limit: sessions each subject may hold.
    :param after: calls to make once the store answers again after ``recovered``.
    """
    report = DrillReport()
    tags = [subject_tag(f"drill-subject-{i}") for i in range(subjects)]
    admitted_sessions: Counter[int] = Counter()
    admitted_tokens: dict[int, list[str]] = defaultdict(list)
    token_uses: Counter[str] = Counter()
    numbers = itertools.count()
    calls = 0
    phase = "before"
    answered_since_recovery = 0
    warmed_up, settled = asyncio.Event(), asyncio.Event()
    loop = asyncio.get_running_loop()

    async def one(worker: int) -> None:
        nonlocal calls, answered_since_recovery
        n = next(numbers)
        subject = n % subjects
        tag = tags[subject]
        replay = n % 5 == 4 and admitted_tokens[subject]
        token = admitted_tokens[subject][0] if replay else f"t{n}"
        ops: list[Op] = [
            UseOp(f"{tag}replay:{token}", limit=1, ttl=3600),
            SessionOp(f"{tag}sessions", f"s{n}", limit=limit, ttl=3600),
        ]
        started = loop.time()
        try:
            outcome = await asyncio.wait_for(store.apply(ops, now=now()), HANG_BOUND)
        except StateUnavailable:
            report.answers["unavailable"] += 1
            if phase == "recovered" and answered_since_recovery:
                report.unavailable_after_recovery += 1
            return
        except TimeoutError:
            report.hung += 1
            return
        finally:
            report.slowest = max(report.slowest, loop.time() - started)
            calls += 1
            if calls >= before:
                warmed_up.set()
        if phase == "recovered":
            answered_since_recovery += 1
            if answered_since_recovery >= after:
                settled.set()
        if outcome.denied is not None:
            report.answers["refused"] += 1
            return
        report.answers["admitted"] += 1
        admitted_sessions[subject] += 1
        token_uses[token] += 1
        if not replay:
            admitted_tokens[subject].append(token)

    async def worker(index: int) -> None:
        while phase != "done":
            await one(index)
            await asyncio.sleep(0)

    tasks = [asyncio.create_task(worker(i)) for i in range(workers)]
    try:
        await warmed_up.wait()
        kill()
        phase = "gap"
        await recovered()
        phase = "recovered"
        await settled.wait()
    finally:
        phase = "done"
        await asyncio.gather(*tasks)
    report.over_admitted_sessions = sum(max(0, n - limit) for n in admitted_sessions.values())
    report.over_admitted_uses = sum(n - 1 for n in token_uses.values() if n > 1)
    return report
