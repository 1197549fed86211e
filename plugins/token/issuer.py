"""An accepted issuer: its configuration, its keys now, and where new keys come from."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any, Protocol

from plugins.token.config import ClaimValue, IssuerConfig
from plugins.token.keys import VerificationKey
from plugins.token.keyset import KeySet


class KeyRefresher(Protocol):
    """What the verifier needs of a remote key source (see :mod:`plugins.token.jwks`)."""

    async def refresh_for_unknown_kid(self) -> bool:
        """Fetch (or join the fetch under way) when a token names an unknown key; False when
        throttled or not running."""
        ...

    @property
    def ever_loaded(self) -> bool:
        """True once a key set was fetched (or carried over from a reload)."""
        ...

    def next_refresh_in(self) -> float:
        """Seconds until the next scheduled fetch."""
        ...


class Clock(Protocol):
    """The time source (``services.clock``)."""

    def time(self) -> float:
        """Seconds since the epoch."""
        ...


class Issuer:
    """An accepted issuer: its configuration, its keys now, and where new keys come from.

    :param config: the ``[[auth.issuers]]`` entry.
    :param static_keys: keys configured inline, parsed at start.
    """

    def __init__(self, config: IssuerConfig, static_keys: Iterable[VerificationKey]) -> None:
        self.config = config
        self.static_keys = tuple(static_keys)
        self.keys = KeySet(self.static_keys)
        self.algorithms = frozenset(config.algorithms)
        self.audiences = frozenset(config.audiences)
        self.refresher: KeyRefresher | None = None
        self._listeners: list[Callable[[Issuer], object]] = []
        self._claim_values = {
            name: _accepted_values([value] if not isinstance(value, list) else value)
            for name, value in config.claim_values.items()
        }

    @property
    def name(self) -> str:
        """The ``iss`` value."""
        return self.config.issuer

    def on_keys_changed(self, listener: Callable[[Issuer], object]) -> None:
        """Call ``listener(issuer)`` whenever the key set changes."""
        self._listeners.append(listener)

    def replace_remote_keys(self, keys: Iterable[VerificationKey]) -> bool:
        """Install a freshly fetched key set beside the configured keys; True when it differs
        from the set in use (the version is bumped and listeners are told)."""
        fresh = KeySet(self.static_keys, version=self.keys.version + 1, published=keys)
        if fresh.same_keys(self.keys):
            return False
        self.keys = fresh
        for listener in self._listeners:
            listener(self)
        return True

    def claim_value_matches(self, name: str, value: Any) -> bool:
        """True when claim ``name``'s value (or, for a list, one of its items) is accepted."""
        accepted = self._claim_values[name]
        items = value if isinstance(value, list) else (value,)
        return any(isinstance(item, str | int) and (type(item), item) in accepted for item in items)


def _accepted_values(values: Iterable[ClaimValue]) -> frozenset[tuple[type, ClaimValue]]:
    # Typed pairs, so that true never matches 1 and "1" never matches 1.
    return frozenset((type(v), v) for v in values)


__all__ = ["Clock", "Issuer", "KeyRefresher"]
