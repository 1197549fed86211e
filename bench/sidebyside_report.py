"""bench.sidebyside's figures and its Markdown: the table, the issue's goals, each round."""

from __future__ import annotations

import statistics
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from bench.loadgen import Load
from bench.sidebyside_paths import PathSpec


@dataclass
class Sample:
    """One measured run of one row.

    :ivar key: the row (a path key, ``before-`` in front for the other checkout's proxy)
    :ivar wall: wall-clock seconds the load generator ran
    :ivar cpu: CPU seconds of the middle process meanwhile
    :ivar upstream_cpu: the emulator's, for rows that go through it
    :ivar others: CPU seconds the rest of the machine used meanwhile (other work)
    :ivar issued: licenses the proxy counted (None: not the proxy, or no counters)
    :ivar refused: requests the proxy counted without a license
    """

    key: str
    label: str
    spec: PathSpec
    round: int
    load: Load
    wall: float
    cpu: float
    upstream_cpu: float | None
    others: float
    issued: int | None = None
    refused: int = 0
    failures: list[str] = field(default_factory=list)

    @property
    def failed(self) -> int:
        """Requests that got no license, by the load generator's count or the proxy's."""
        return max(self.load.failed, self.refused)

    @property
    def cpu_us(self) -> float:
        """The middle process's CPU microseconds per successful request."""
        return self.cpu / self.load.ok * 1e6 if self.load.ok else float("nan")

    @property
    def upstream_us(self) -> float | None:
        """The emulator's CPU microseconds per request, for rows that go through it."""
        if self.upstream_cpu is None or not self.load.ok:
            return None
        return self.upstream_cpu / self.load.ok * 1e6


def _median(values: Sequence[float]) -> float:
    present = [v for v in values if v == v]
    return statistics.median(present) if present else float("nan")


def _ms(value: float) -> str:
    return f"{value:.2f}" if value == value else "-"


def summary(samples: Sequence[Sample]) -> str:
    """Per row, the median of the rounds (the CPU's range beside it)."""
    lines = [
        "| path | req/s | p50 ms | p99 ms | CPU us/req (middle) | CPU range | emulator us/req | failed |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for key in dict.fromkeys(s.key for s in samples):
        mine = [s for s in samples if s.key == key]
        cpus = [s.cpu_us for s in mine]
        ups = [u for s in mine if (u := s.upstream_us) is not None]
        lines.append(
            f"| {mine[0].label} | {_median([s.load.rps for s in mine]):,.0f} "
            f"| {_ms(_median([s.load.p50_ms for s in mine]))} "
            f"| {_ms(_median([s.load.p99_ms for s in mine]))} "
            f"| **{_median(cpus):.0f}** | {min(cpus):.0f}-{max(cpus):.0f} "
            f"| {f'{_median(ups):.0f}' if ups else '-'} | {sum(s.failed for s in mine)} |"
        )
    return "\n".join(lines)


@dataclass(frozen=True)
class Goal:
    """One of the issue's goals, computed from some rows' CPU per request in one round."""

    name: str
    needs: tuple[str, ...]
    compute: Callable[[dict[str, float]], float]
    unit: str
    bound: float
    explain: str

    def show(self, value: float) -> str:
        """``value`` in the goal's unit."""
        return f"{value:.2f}x" if self.unit == "x" else f"{value:+.0f} us"


GOALS = (
    Goal(
        "HTTP full path / bare forwarder",
        ("vendor-http", "forwarder"),
        lambda c: c["vendor-http"] / c["forwarder"],
        "x",
        1.7,
        "the proxy's HTTP full-path CPU per request over the forwarder's",
    ),
    Goal(
        "gRPC surcharge on our own work",
        ("vendor-grpc", "vendor-http", "bare-grpc", "bare-http"),
        lambda c: c["vendor-grpc"] - c["vendor-http"] - (c["bare-grpc"] - c["bare-http"]),
        "us",
        30,
        "gRPC full path - HTTP full path - (bare grpc.aio - bare aiohttp): the goal "
        "gRPC <= HTTP + (bare grpc.aio - bare aiohttp) + 30 us",
    ),
    Goal(
        "embedded default gRPC over bare grpc.aio",
        ("default-grpc", "bare-grpc"),
        lambda c: c["default-grpc"] - c["bare-grpc"],
        "us",
        150,
        "default gRPC - bare grpc.aio",
    ),
    Goal(
        "embedded default HTTP over bare aiohttp",
        ("default-http", "bare-http"),
        lambda c: c["default-http"] - c["bare-http"],
        "us",
        100,
        "default HTTP - bare aiohttp",
    ),
)


def round_cpu(samples: Sequence[Sample], round_: int, before: bool) -> dict[str, float]:
    """CPU us per request by path key in one round: the bare rows, and the proxy rows of
    this checkout or (``before``) of the other one."""
    return {
        s.spec.key: s.cpu_us
        for s in samples
        if s.round == round_ and (not s.spec.proxy or s.key.startswith("before-") == before)
    }


def goals(samples: Sequence[Sample], rounds: int, before: bool) -> str:
    """The goals for this checkout (and the other one, with ``before``): the median of the
    rounds' figures, each round's beside it (a round's paths ran minutes apart at most)."""
    lines = [
        "| goal | proxy | median | per round | goal | met |",
        "| --- | --- | ---: | --- | ---: | --- |",
    ]
    notes = []
    for goal in GOALS:
        shown = False
        for variant in (False, True) if before else (False,):
            figures = []
            for r in range(rounds):
                cpu = round_cpu(samples, r, variant)
                if all(n in cpu for n in goal.needs):
                    figures.append(goal.compute(cpu))
            if not figures:
                continue
            median = _median(figures)
            lines.append(
                f"| {goal.name} | {'before' if variant else 'this checkout'} "
                f"| **{goal.show(median)}** | {', '.join(goal.show(f) for f in figures)} "
                f"| <= {goal.show(goal.bound).lstrip('+')} | {'yes' if median <= goal.bound else 'no'} |"
            )
            shown = True
        if shown:
            notes.append(f"- {goal.name}: {goal.explain}.")
    return "\n".join([*lines, "", *notes])


def details(samples: Sequence[Sample]) -> str:
    """Every round's figures, with the cores the load generator and everything else kept
    busy meanwhile (others: work of other processes on the machine), the answers the load
    generator counted 2xx and the licenses the proxy counted issued (the requests cut in
    flight when the load stops make the second a few more)."""
    lines = [
        "| round | path | req/s | p50 ms | p99 ms | CPU us/req | emulator us/req "
        "| load gen cores | others' cores | 2xx | issued | failed |",
        "| ---: | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for s in samples:
        up = s.upstream_us
        wall = s.wall or 1.0
        lines.append(
            f"| {s.round + 1} | {s.key} | {s.load.rps:,.0f} | {_ms(s.load.p50_ms)} "
            f"| {_ms(s.load.p99_ms)} | {s.cpu_us:.0f} | {f'{up:.0f}' if up is not None else '-'} "
            f"| {s.load.cpu / wall:.2f} | {s.others / wall:.2f} "
            f"| {s.load.ok} | {s.issued if s.issued is not None else '-'} | {s.failed} |"
        )
    return "\n".join(lines)


def failures(samples: Sequence[Sample]) -> str:
    """What went wrong, per run; or that nothing did."""
    found = [
        f"- round {s.round + 1}, {s.key}: {'; '.join(s.failures)}" for s in samples if s.failures
    ]
    if not found:
        return "Failures: none (every real call succeeded; the proxy counted every request issued)."
    return "\n".join(["**Failures:**", "", *found])
