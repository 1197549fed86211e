"""Random ids for every request, drawn from the operating system a block at a time.

A request used to make one ``getrandom`` system call for its request id and another for
each vendor token's ``jti``; both now come from blocks of 4 KiB of ``os.urandom``.
The draws stay as unpredictable as ``secrets`` makes them. A block's pieces are handed
out by ``list.pop`` (one step under the GIL, so two threads never get the same piece),
and a forked child throws its parent's pieces away.
"""

from __future__ import annotations

import os
import uuid

_BLOCK = 4096
_uuids: list[bytes] = []
_hex_ids: list[str] = []


def _forget() -> None:
    _uuids.clear()
    _hex_ids.clear()


os.register_at_fork(after_in_child=_forget)


def random_uuid() -> uuid.UUID:
    """A random (version 4) UUID, as ``uuid.uuid4()`` makes, without a system call each."""
    try:
        raw = _uuids.pop()
    except IndexError:
        block = os.urandom(_BLOCK)
        _uuids.extend(block[i : i + 16] for i in range(0, _BLOCK, 16))
        raw = _uuids.pop()
    return uuid.UUID(bytes=raw, version=4)


def random_hex16() -> str:
    """Sixteen random hex digits (64 bits)."""
    try:
        return _hex_ids.pop()
    except IndexError:
        block = os.urandom(_BLOCK).hex()
        _hex_ids.extend(block[i : i + 16] for i in range(0, len(block), 16))
        return _hex_ids.pop()


__all__ = ["random_hex16", "random_uuid"]
