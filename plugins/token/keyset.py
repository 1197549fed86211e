"""One issuer's keys at one moment: an immutable snapshot, replaced whole when keys rotate."""

from __future__ import annotations

from collections.abc import Iterable

from plugins.token.keys import VerificationKey
from proxy import ProxyError, Reason


class KeySet:
    """An immutable set of verification keys, indexed by ``kid``.

    :param keys: the keys configured for the issuer.
    :param version: see below.
    :param published: the keys of the issuer's remote key set (``jwks_uri``, discovery).
    :ivar keys: every key, configured ones first.
    :ivar version: bumped each time the issuer's keys change; cached verifications made
        with an older version are dropped.
    """

    __slots__ = ("_anonymous", "_by_id", "_lone_published", "fingerprints", "keys", "version")

    def __init__(
        self,
        keys: Iterable[VerificationKey] = (),
        version: int = 0,
        *,
        published: Iterable[VerificationKey] = (),
    ) -> None:
        configured = tuple(keys)
        remote = tuple(published)
        self.keys = (*configured, *remote)
        self.version = version
        self._by_id: dict[str, tuple[VerificationKey, ...]] = {}
        for key in self.keys:
            if key.id is not None:
                self._by_id[key.id] = (*self._by_id.get(key.id, ()), key)
        # Keys an operator configured without id serve any kid. A published key without
        # kid does so only while it is the set's one key for its algorithm, so a token
        # never costs a signature check per key an identity provider publishes.
        self._anonymous = tuple(k for k in configured if k.id is None)
        self._lone_published: dict[str, VerificationKey] = {}
        for alg in {alg for key in remote for alg in key.prepared}:
            fitting = [k for k in remote if alg in k.prepared]
            if len(fitting) == 1 and fitting[0].id is None:
                self._lone_published[alg] = fitting[0]
        self.fingerprints = frozenset((k.id, k.fingerprint, k.algorithms) for k in self.keys)

    def __len__(self) -> int:
        return len(self.keys)

    def same_keys(self, other: KeySet) -> bool:
        """True when both sets hold the same keys under the same ids and algorithms."""
        return self.fingerprints == other.fingerprints

    def select(self, kid: str | None, alg: str) -> list[VerificationKey] | None:
        """The keys that may verify a token with this ``kid`` and ``alg``.

        A token without ``kid`` is tried with the keys configured without id, or
        else with the set's only key for ``alg``; it is never tried against a
        whole published set, so a forged token costs one signature check per key
        the operator configured, not per key an identity provider publishes.

        None when the set does not know the ``kid`` (or holds no key at all): a
        refresh may find it. A known key of another family is
        TOKEN_ALGORITHM_REJECTED: a key never verifies with an algorithm outside
        its own family.
        """
        if kid is None:
            return self._select_without_kid(alg)
        named = self._by_id.get(kid)
        if not named:
            return None
        fitting = [k for k in named if alg in k.prepared]
        if not fitting:
            raise ProxyError(
                Reason.TOKEN_ALGORITHM_REJECTED, f"algorithm {alg} does not fit the token's key"
            )
        return fitting

    def _select_without_kid(self, alg: str) -> list[VerificationKey] | None:
        if not self.keys:
            return None
        anonymous = [k for k in self._anonymous if alg in k.prepared]
        if anonymous:
            return anonymous
        fitting = [k for k in self.keys if alg in k.prepared]
        if len(fitting) == 1:
            return fitting
        lone = self._lone_published.get(alg)
        if lone is not None:
            return [lone]
        if fitting:
            raise ProxyError(
                Reason.TOKEN_KEY_UNKNOWN, "the token names no key (kid) and the issuer has several"
            )
        raise ProxyError(
            Reason.TOKEN_ALGORITHM_REJECTED, f"algorithm {alg} does not fit the issuer's keys"
        )

    def select_anonymous(self, alg: str) -> list[VerificationKey]:
        """For a ``kid`` no key answers to: the keys configured without id, and a published
        key without kid when it is the published set's only key for ``alg``; else
        TOKEN_KEY_UNKNOWN (TOKEN_ALGORITHM_REJECTED when the id-less keys configured are of
        another family)."""
        fitting = [k for k in self._anonymous if alg in k.prepared]
        lone = self._lone_published.get(alg)
        if lone is not None:
            fitting.append(lone)
        if fitting:
            return fitting
        if not self._anonymous:
            raise ProxyError(Reason.TOKEN_KEY_UNKNOWN, "the token's key id is not known")
        raise ProxyError(
            Reason.TOKEN_ALGORITHM_REJECTED, f"algorithm {alg} does not fit the issuer's keys"
        )


__all__ = ["KeySet"]
