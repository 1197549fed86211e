"""Request ids: random, well formed, never repeated, not shared with a forked child."""

from __future__ import annotations

import os
import re

from proxy.logs import accept_request_id, new_request_id


def test_fresh_ids_are_sixteen_hex_digits_and_never_repeat():
    ids = [new_request_id() for _ in range(5000)]  # across many refills of the pool
    assert all(re.fullmatch(r"[0-9a-f]{16}", one) for one in ids)
    assert len(set(ids)) == len(ids)


def test_a_forked_child_draws_its_own_ids():
    new_request_id()  # the parent's pool is full now
    read_end, write_end = os.pipe()
    child = os.fork()
    if child == 0:  # pragma: no cover - the child's side
        os.close(read_end)
        os.write(write_end, "".join(new_request_id() for _ in range(100)).encode())
        os._exit(0)
    os.close(write_end)
    with os.fdopen(read_end) as pipe:
        text = pipe.read()
    os.waitpid(child, 0)
    theirs = {text[i : i + 16] for i in range(0, len(text), 16)}
    ours = {new_request_id() for _ in range(100)}
    assert len(theirs) == 100 and not theirs & ours


def test_only_a_trusted_callers_well_formed_id_is_kept():
    assert accept_request_id("abc-123", trusted=True) == "abc-123"
    assert accept_request_id("abc-123", trusted=False) != "abc-123"
    assert accept_request_id("bad id\n", trusted=True) != "bad id\n"


def test_random_uuids_are_version_4_and_never_repeat():
    import uuid

    from proxy import random_uuid

    ids = [random_uuid() for _ in range(3000)]  # across several refills of the block
    assert all(one.version == 4 and one.variant == uuid.RFC_4122 for one in ids)
    assert len(set(ids)) == len(ids)
