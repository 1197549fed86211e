"""The operations a state rule asks of the store, and the store's answer."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class StateUnavailable(Exception):
    """The store could not be reached or did not answer; the message names no secret."""


@dataclass(frozen=True, slots=True)
class RateOp:
    """Count one request in a GCRA bucket (a token bucket without a refill timer).

    :ivar key: the bucket.
    :ivar interval: seconds between requests at the sustained rate (period / rate).
    :ivar burst: requests admitted at once from a full bucket (at least 1).
    """

    key: str
    interval: float
    burst: int = 1


@dataclass(frozen=True, slots=True)
class UseOp:
    """Spend one use of a counter that allows ``limit`` uses and is kept ``ttl`` seconds."""

    key: str
    limit: int
    ttl: float


class SessionMode(StrEnum):
    """What a request does to its session."""

    TAKE = "T"
    """Start or continue the session: refused when the set is full without it."""
    TOUCH = "R"
    """Keep an existing session alive (renewals); never adds one, never refuses."""
    RELEASE = "X"
    """End the session now."""


@dataclass(frozen=True, slots=True)
class SessionOp:
    """Count a session in a set of at most ``limit`` live sessions.

    :ivar key: the set (one per subject).
    :ivar session: the session id (no whitespace: the rules pass digests).
    :ivar ttl: seconds a session stays live after its last request.
    """

    key: str
    session: str
    limit: int
    ttl: float
    mode: SessionMode = SessionMode.TAKE

    def __post_init__(self) -> None:
        if not self.session or any(c.isspace() for c in self.session):
            raise ValueError("a session id is a non-empty string without whitespace")


Op = RateOp | UseOp | SessionOp


@dataclass(frozen=True, slots=True)
class Outcome:
    """The store's answer to a batch.

    :ivar denied: the index of the operation that refused the request, or None.
    :ivar retry_after: seconds until the refusing operation may succeed, when known.
    :ivar taken: the committed operations :meth:`StateStore.undo` can give back
        (uses spent, sessions newly added).
    """

    denied: int | None = None
    retry_after: float | None = None
    taken: tuple[Op, ...] = ()
