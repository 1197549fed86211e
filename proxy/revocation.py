"""Revocations: a subject or a token (its ``jti``) refused until a time, in every replica.

An operator revokes through the admin API; the revocation is a mark in the state
store (``services.state``), so every replica sharing that store (Redis) sees it on
its next request, and a memory store keeps it for this process. Keys are digests
(``revoked:sub:...``, ``revoked:jti:...``): no subject or token id in key names.

A subject may be revoked for one issuer or for every issuer; the check after
authentication reads the subject's two marks and the token's in one store call.
"""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass
from enum import StrEnum

from proxy.clock import Clock
from proxy.errors import ProxyError, Reason
from proxy.model import Principal
from proxy.state import StateStore, StateUnavailable

log = logging.getLogger("proxy.revocation")

#: Longest subject, issuer or jti a revocation takes (the access rules' limit).
MAX_VALUE_LENGTH = 512


class RevocationKind(StrEnum):
    """What a revocation names."""

    SUBJECT = "subject"
    JTI = "jti"


@dataclass(frozen=True, slots=True)
class Revocation:
    """One revocation as the store holds it.

    :ivar kind: a subject or a token id.
    :ivar value: the subject or the ``jti``.
    :ivar issuer: the subject's issuer, or None for every issuer (subjects only).
    :ivar until: seconds since the epoch when it lapses; None when there is none.
    """

    kind: RevocationKind
    value: str
    issuer: str | None = None
    until: float | None = None

    @property
    def key(self) -> str:
        """The store key of this revocation."""
        if self.kind is RevocationKind.JTI:
            return _key("jti", self.value)
        return _key("sub", self.issuer or "", self.value)


def _key(kind: str, *parts: str) -> str:
    digest = hashlib.blake2b("\x1f".join(parts).encode(), digest_size=16).hexdigest()
    return f"revoked:{kind}:{digest}"


class Revocations:
    """Revoke, look up and lift revocations, and refuse revoked principals.

    :param store: the pipeline's state store.
    :param clock: the pipeline's clock (revocations lapse by it).
    :param fail_open: admit requests when the store can't be asked (default: refuse
        them with STATE_UNAVAILABLE, as the state rules do).
    """

    def __init__(self, store: StateStore, clock: Clock, *, fail_open: bool = False) -> None:
        self.store = store
        self.clock = clock
        self.fail_open = fail_open

    async def revoke(self, revocation: Revocation) -> None:
        """Store ``revocation`` until its ``until``. Raises StateUnavailable."""
        assert revocation.until is not None
        await self.store.put_mark(revocation.key, until=revocation.until, now=self.clock.time())

    async def lift(self, revocation: Revocation) -> bool:
        """Remove a revocation; True when there was one. Raises StateUnavailable."""
        return await self.store.clear_mark(revocation.key)

    async def lookup(self, revocation: Revocation) -> float | None:
        """When a revocation lapses, or None when there is none. Raises StateUnavailable."""
        [until] = await self.store.marks([revocation.key], now=self.clock.time())
        return until

    async def check(self, principal: Principal) -> None:
        """Refuse ``principal`` with TOKEN_REVOKED when its subject (for any issuer or its own)
        or its token's ``jti`` is revoked; one store call."""
        candidates: list[RevocationKind] = []
        keys: list[str] = []
        subject = principal.subject
        if subject:
            for issuer in (None, principal.issuer) if principal.issuer else (None,):
                candidates.append(RevocationKind.SUBJECT)
                keys.append(Revocation(RevocationKind.SUBJECT, subject, issuer).key)
        jti = principal.claims.get("jti")
        if isinstance(jti, str) and jti:
            candidates.append(RevocationKind.JTI)
            keys.append(Revocation(RevocationKind.JTI, jti).key)
        if not keys:
            return
        try:
            found = await self.store.marks(keys, now=self.clock.time())
        except StateUnavailable as exc:
            if self.fail_open:
                log.warning("revocations not checked, the state store is unavailable: %s", exc)
                return
            raise ProxyError(
                Reason.STATE_UNAVAILABLE,
                "the shared state store can't be reached to check revocations; try again shortly",
                retry_after=1,
            ) from None
        for kind, until in zip(candidates, found, strict=True):
            if until is not None:
                raise ProxyError(
                    Reason.TOKEN_REVOKED,
                    "this token's subject has been revoked"
                    if kind is RevocationKind.SUBJECT
                    else "this token has been revoked",
                    metadata={"revoked": kind.value},
                )


__all__ = ["MAX_VALUE_LENGTH", "Revocation", "RevocationKind", "Revocations"]
