"""The operations a state rule asks of the store, and the store's answer."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class StateUnavailable(Exception):
    """The store could not be reached or did not answer; the message names no secret."""


def _no_space(value: str, what: str) -> None:
    if not value or any(c.isspace() for c in value):
        raise ValueError(f"{what} is a non-empty string without whitespace")


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
    """Spend one use of a counter that allows ``limit`` uses and is kept ``ttl`` seconds.

    With a ``retry_key`` (a digest of the token *and* the challenge), the first use
    marks that key for ``retry_window`` seconds; a batch that finds the mark is a
    **retry** of an admitted request: it spends no use, and no rate bucket of its batch
    counts it (on a cluster: none in the same hash slot). The mark counts the requests
    riding on the one use, so the use is given back only when every one of them failed.

    :ivar rides: set by the store on the op it hands back in ``Outcome.taken`` when the
        request rode an earlier use (what :meth:`StateStore.undo` must know); callers
        leave it False.
    """

    key: str
    limit: int
    ttl: float
    retry_key: str | None = None
    retry_window: float = 0.0
    rides: bool = False

    def __post_init__(self) -> None:
        if (self.retry_key is None) != (self.retry_window <= 0):
            raise ValueError("retry_key and a positive retry_window go together")


class SessionMode(StrEnum):
    """What a request does to its session."""

    TAKE = "T"
    """Start or continue the session: refused when the set is full without it (or, with a
    ``stopped_key``, the set's oldest session is stopped to make room)."""
    TOUCH = "R"
    """Keep an existing session alive (renewals); never adds one. Refused only when the
    session was stopped to make room for another (``stopped_key``)."""
    RELEASE = "X"
    """End the session now."""


@dataclass(frozen=True, slots=True)
class SessionOp:
    """Count a session (a playback) in a set of at most ``limit`` live sessions.

    :ivar key: the set (one per subject; a sorted set of session -> expiry on Redis).
    :ivar session: the session id (no whitespace: the rules pass digests).
    :ivar ttl: seconds a session stays live after its last request.
    :ivar stopped_key: *stop oldest* mode: a new session beyond a limit stops the session
        that would lapse first (heard from least recently) instead of being refused, and
        the stopped one is kept here for ``ttl`` so that its next TOUCH is refused.
    :ivar content_key: where each live session's ``content`` is kept (a hash on Redis),
        for ``content_limit``.
    :ivar content: what this session plays (a digest, no whitespace), with ``content_key``.
    :ivar content_limit: at most this many live sessions of one ``content``; 0: no limit.

    Every key of one operation must share a cluster hash slot (the rules tag them alike).
    """

    key: str
    session: str
    limit: int
    ttl: float
    mode: SessionMode = SessionMode.TAKE
    stopped_key: str | None = None
    content_key: str | None = None
    content: str = "-"
    content_limit: int = 0

    def __post_init__(self) -> None:
        _no_space(self.session, "a session id")
        _no_space(self.content, "a content digest")
        if self.content_limit and self.content_key is None:
            raise ValueError("a content_limit needs a content_key")


class RecordMode(StrEnum):
    """What a request does to a record."""

    BEGIN = "B"
    """Create the record (``started`` = now); when one is live, keep its start, replace
    its payload and push its end out to at least now + ttl."""
    EXTEND = "E"
    """Push a live record's end out to at least now + ttl; nothing when there is none."""
    END = "X"
    """Delete the record."""


@dataclass(frozen=True, slots=True)
class RecordOp:
    """Keep a small record (when it began, until when it holds, an opaque payload).

    Used for license sessions (:mod:`proxy.sessions`): what a later renewal of the
    session is recognised by. Never refuses a request.

    :ivar ttl: the record holds at least until now + ttl (BEGIN, EXTEND).
    :ivar payload: opaque text (kept as is; BEGIN only).
    """

    key: str
    mode: RecordMode
    ttl: float = 0.0
    payload: str = ""


@dataclass(frozen=True, slots=True)
class Record:
    """A record as :meth:`StateStore.records` reads it.

    :ivar started: seconds since the epoch when it was begun.
    :ivar until: seconds since the epoch when it lapses.
    :ivar payload: what the last BEGIN wrote.
    """

    started: float
    until: float
    payload: str


Op = RateOp | UseOp | SessionOp | RecordOp


def op_keys(op: Op) -> list[str]:
    """Every key ``op`` reads or writes, its own ``key`` first (the order the scripts take)."""
    if isinstance(op, UseOp):
        return [op.key] if op.retry_key is None else [op.key, op.retry_key]
    if isinstance(op, SessionOp):
        keys = [op.key]
        if op.stopped_key is not None:
            keys.append(op.stopped_key)
        if op.content_key is not None:
            keys.append(op.content_key)
        return keys
    return [op.key]


@dataclass(frozen=True, slots=True)
class Outcome:
    """The store's answer to a batch.

    :ivar denied: the index of the operation that refused the request, or None.
    :ivar retry_after: seconds until the refusing operation may succeed, when known.
    :ivar taken: the committed operations :meth:`StateStore.undo` can give back
        (uses spent or ridden, sessions newly added, records newly begun).
    """

    denied: int | None = None
    retry_after: float | None = None
    taken: tuple[Op, ...] = ()
