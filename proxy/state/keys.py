"""Store key names: fixed-size digests, hash-tagged by subject so one subject's state shares
one cluster slot. No user data shows in a key name and no key grows with input."""

from __future__ import annotations

import hashlib


def state_key(kind: str, *parts: str, tag: str = "") -> str:
    """A fixed-size store key for ``parts``: no user data in key names, no unbounded keys.

    ``tag`` (from :func:`slot_tag`) goes first, so that on Redis Cluster every key with
    the same tag lands in the same hash slot and one script settles them together.
    """
    digest = hashlib.blake2b("\x1f".join(parts).encode(), digest_size=16).hexdigest()
    return f"{tag}{kind}:{digest}"


def slot_tag(subject: str) -> str:
    """The hash tag of a subject's keys (``{16 hex digits}``): its token uses, sessions and
    rate bucket share one cluster slot. A digest, so no user data shows in key names."""
    return "{" + hashlib.blake2b(subject.encode(), digest_size=8).hexdigest() + "}"


__all__ = ["slot_tag", "state_key"]
