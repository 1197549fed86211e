"""A bounded cache of verified tokens, keyed by the whole token.

Renewals, retries and the Widevine service-certificate request that precedes
a license request present the same token again; verifying it again would
repeat the base64, JSON and signature work for an answer already known. An
entry holds what verification found (the principal and the token's time
claims) and is only a shortcut past the steps whose answer cannot change:
shape, issuer, key, signature, audience and required claims. The time checks
run on every hit, so an entry never answers after ``exp``; an entry made with
a key set that has since changed is dropped.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass
from typing import TYPE_CHECKING

from proxy.model import Principal

if TYPE_CHECKING:
    from plugins.token.issuer import Issuer


@dataclass(frozen=True, slots=True)
class TokenTimes:
    """A token's time claims, as numbers (``exp`` is always present once verified)."""

    exp: float
    nbf: float | None
    iat: float | None


@dataclass(frozen=True, slots=True)
class CachedVerification:
    """What a full verification of one token found.

    :ivar principal: the principal handed to later hooks.
    :ivar issuer: the issuer that accepted it.
    :ivar key_version: the issuer's key-set version at verification.
    :ivar times: the time claims, checked again on every hit.
    """

    principal: Principal
    issuer: Issuer
    key_version: int
    times: TokenTimes


class VerificationCache:
    """Least-recently-used map from token to :class:`CachedVerification`, at most ``size`` long.

    :param size: entries kept; 0 turns the cache off.
    """

    def __init__(self, size: int) -> None:
        self.size = size
        self._entries: OrderedDict[str, CachedVerification] = OrderedDict()

    def __len__(self) -> int:
        return len(self._entries)

    def get(self, token: str) -> CachedVerification | None:
        """The entry for ``token``, marked as recently used; None when absent."""
        entry = self._entries.get(token)
        if entry is not None:
            self._entries.move_to_end(token)
        return entry

    def put(self, token: str, entry: CachedVerification) -> None:
        """Remember a verification, evicting the least recently used entry when full."""
        if self.size <= 0:
            return
        self._entries[token] = entry
        self._entries.move_to_end(token)
        while len(self._entries) > self.size:
            self._entries.popitem(last=False)

    def discard(self, token: str) -> None:
        """Forget one token (it expired, or its issuer's keys changed)."""
        self._entries.pop(token, None)

    def drop_issuer(self, issuer: Issuer) -> int:
        """Forget every token ``issuer`` accepted (its key set changed); how many were dropped."""
        stale = [token for token, entry in self._entries.items() if entry.issuer is issuer]
        for token in stale:
            del self._entries[token]
        return len(stale)

    def clear(self) -> None:
        """Forget everything."""
        self._entries.clear()


__all__ = ["CachedVerification", "TokenTimes", "VerificationCache"]
