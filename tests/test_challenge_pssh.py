"""pssh boxes: the real ones from shaka-player, web-platform-tests and the W3C, and broken ones."""

from __future__ import annotations

import json
import struct
import uuid

import pytest

from proxy.challenge import samples
from proxy.challenge.pssh import (
    COMMON_SYSTEM_ID,
    WIDEVINE_SYSTEM_ID,
    looks_like_pssh,
    parse_pssh_boxes,
)
from proxy.errors import ProxyError, Reason
from tests.conftest import DATA

INDEX = json.loads((DATA / "pssh" / "index.json").read_text())


@pytest.mark.parametrize("name", sorted(INDEX))
def test_real_boxes_match_their_index(name):
    data = (DATA / "pssh" / f"{name}.bin").read_bytes()
    assert looks_like_pssh(data)
    boxes = parse_pssh_boxes(data)
    expected = INDEX[name]["boxes"]
    assert [b.system for b in boxes] == [e["system"] for e in expected]
    assert [str(uuid.UUID(bytes=b.system_id)) for b in boxes] == [e["system_id"] for e in expected]
    assert [b.version for b in boxes] == [e["version"] for e in expected]


def test_the_w3c_common_pssh_v1_lists_its_key_ids():
    data = (DATA / "clearkey" / "w3c_cenc_initdata_common_pssh_example.bin").read_bytes()
    (box,) = parse_pssh_boxes(data)
    assert box.system_id == COMMON_SYSTEM_ID
    assert box.version == 1
    assert box.key_ids == (b"0123456789012345", b"ABCDEFGHIJKLMNOP")
    assert box.data == b""


def test_a_64_bit_size_and_a_size_of_zero():
    box = samples.pssh_box(WIDEVINE_SYSTEM_ID, b"abc")
    large = struct.pack(">I4sQ", 1, b"pssh", len(box) + 8) + box[8:]
    to_end = b"\x00\x00\x00\x00" + box[4:]
    assert parse_pssh_boxes(large)[0].data == b"abc"
    assert parse_pssh_boxes(to_end)[0].data == b"abc"


def _refused(data: bytes) -> str:
    with pytest.raises(ProxyError) as raised:
        parse_pssh_boxes(data)
    assert raised.value.reason is Reason.CHALLENGE_INVALID
    return raised.value.detail


BOX = samples.pssh_box(WIDEVINE_SYSTEM_ID, b"abcd", key_ids=[b"k" * 16])


@pytest.mark.parametrize(
    ("data", "words"),
    [
        (b"", "no pssh box"),
        (BOX[:5], "truncated"),
        (BOX[:-1], "does not fit"),
        (BOX[:4] + b"moov" + BOX[8:], "not a pssh"),
        (BOX[:8] + b"\x02" + BOX[9:], "version 2"),
        (struct.pack(">I", 20) + BOX[4:20], "does not fit"),
        (BOX[:28] + struct.pack(">I", 1000) + BOX[32:], "key id"),
        (BOX[:28] + struct.pack(">I", 2) + BOX[32:], "key id list"),
        (BOX[:-8] + struct.pack(">I", 99) + BOX[-4:], "data size"),
        (BOX * 33, "more than 32"),
    ],
    ids=[
        "empty",
        "short-header",
        "short-box",
        "not-pssh",
        "version-2",
        "too-small",
        "kid-count-huge",
        "kid-count-past-end",
        "data-size-wrong",
        "too-many-boxes",
    ],
)
def test_broken_boxes_are_refused(data, words):
    assert words in _refused(data)
