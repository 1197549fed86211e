"""What plugins let operators see and do through the core, without the core importing them.

The admin API asks the current pipeline's :class:`StatusBoard`
(``services.status``) for the states of the key sources and for the concurrency
sessions of a subject. Plugins fill it in ``proxy_configure``:

- a key-source provider (``status.add_key_sources(provider)``) returns one
  :class:`KeySourceStatus` per remote key set it keeps fresh (the token plugin's
  JWKS and OpenID Connect sources);
- a :class:`SessionDirectory` (``status.set_sessions(directory)``) lists and
  ends the sessions a subject holds (the concurrency rule, which alone knows how
  it names its sets in the state store).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Protocol


@dataclass(frozen=True, slots=True)
class KeySourceStatus:
    """One remote key set as its refresher sees it.

    :ivar issuer: the issuer the keys verify.
    :ivar url: the ``jwks_uri`` or discovery document it fetches.
    :ivar keys: usable keys installed now.
    :ivar fetches: fetches started since the pipeline began.
    :ivar successes: of which produced a key set.
    :ivar last_success: seconds since the epoch of the last good fetch, or None.
    :ivar next_refresh_in: seconds until the next scheduled fetch.
    :ivar failing: the last fetch failed (the last good keys stay in use).
    """

    issuer: str
    url: str
    keys: int
    fetches: int
    successes: int
    last_success: float | None
    next_refresh_in: float
    failing: bool


@dataclass(frozen=True, slots=True)
class SessionInfo:
    """One live session of a subject: its id in the store (a digest) and when it lapses."""

    session: str
    expires: float


class SessionDirectory(Protocol):
    """Lists and ends the sessions a subject holds (registered by the concurrency rule)."""

    async def list_sessions(self, subject: str, *, now: float) -> list[SessionInfo]:
        """The live sessions of ``subject``, as the rule counts them. Raises StateUnavailable."""
        ...

    async def end_sessions(
        self, subject: str, sessions: Sequence[str] | None = None, *, now: float
    ) -> int:
        """End ``sessions`` (all when None) of ``subject``; how many were live. Raises
        StateUnavailable."""
        ...


KeySourceProvider = Callable[[], Iterable[KeySourceStatus]]


class StatusBoard:
    """The pipeline's registry of what plugins expose to operators (see the module docs)."""

    def __init__(self) -> None:
        self._key_sources: list[KeySourceProvider] = []
        self.sessions: SessionDirectory | None = None

    def add_key_sources(self, provider: KeySourceProvider) -> None:
        """Register a provider of key-source states (called when the admin API asks)."""
        self._key_sources.append(provider)

    def set_sessions(self, directory: SessionDirectory) -> None:
        """Register the directory of subjects' sessions (one per pipeline)."""
        self.sessions = directory

    def key_sources(self) -> list[KeySourceStatus]:
        """Every registered key source's state, in registration order."""
        return [status for provider in self._key_sources for status in provider()]


__all__ = [
    "KeySourceProvider",
    "KeySourceStatus",
    "SessionDirectory",
    "SessionInfo",
    "StatusBoard",
]
