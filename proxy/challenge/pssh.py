"""ISO/IEC 23001-7 ``pssh`` boxes, as found in CENC init data, and the DRM system ids.

A box is ``size(4) 'pssh' version(1) flags(3) system_id(16)``, then for version 1
``kid_count(4)`` and that many 16-byte key ids, then ``data_size(4) data``.
Every length is checked against what is left before anything is read.
"""

from __future__ import annotations

import struct
import uuid
from dataclasses import dataclass

from proxy.challenge.common import MAX_KEY_IDS, invalid

WIDEVINE_SYSTEM_ID = uuid.UUID("edef8ba9-79d6-4ace-a3c8-27dcd51d21ed").bytes
PLAYREADY_SYSTEM_ID = uuid.UUID("9a04f079-9840-4286-ab92-e65be0885f95").bytes
#: The byte-swapped PlayReady id some legacy content carries.
PLAYREADY_LEGACY_SYSTEM_ID = uuid.UUID("79f0049a-4098-8642-ab92-e65be0885f95").bytes
FAIRPLAY_SYSTEM_ID = uuid.UUID("94ce86fb-07ff-4f43-adb8-93d2fa968ca2").bytes
#: shaka-packager's self-described unofficial FairPlay id.
FAIRPLAY_UNOFFICIAL_SYSTEM_ID = uuid.UUID("29701fe4-3cc7-4a34-8c5b-ae90c7439a47").bytes
#: W3C Common PSSH (ClearKey); always version 1, key ids in the box header.
COMMON_SYSTEM_ID = uuid.UUID("1077efec-c0b2-4d02-ace3-3c1e52e2fb4b").bytes
DASH_IF_CLEARKEY_SYSTEM_ID = uuid.UUID("e2719d58-a985-b3c9-781a-b030af78d30e").bytes

SYSTEM_NAMES: dict[bytes, str] = {
    WIDEVINE_SYSTEM_ID: "widevine",
    PLAYREADY_SYSTEM_ID: "playready",
    PLAYREADY_LEGACY_SYSTEM_ID: "playready",
    FAIRPLAY_SYSTEM_ID: "fairplay",
    FAIRPLAY_UNOFFICIAL_SYSTEM_ID: "fairplay",
    COMMON_SYSTEM_ID: "clearkey",
    DASH_IF_CLEARKEY_SYSTEM_ID: "clearkey",
}

#: Most boxes one init data may hold.
MAX_BOXES = 32
_HEADER = struct.Struct(">I4s")


@dataclass(slots=True, frozen=True)
class PsshBox:
    """One parsed ``pssh`` box."""

    version: int
    system_id: bytes
    key_ids: tuple[bytes, ...]
    data: bytes

    @property
    def system(self) -> str:
        """The DRM system's name (``widevine``, ``playready``...), or ``unknown``."""
        return SYSTEM_NAMES.get(self.system_id, "unknown")


def looks_like_pssh(data: bytes) -> bool:
    """True when ``data`` starts with a ``pssh`` box header."""
    return len(data) >= 8 and data[4:8] == b"pssh"


def parse_pssh_boxes(data: bytes, drm: str = "pssh") -> list[PsshBox]:
    """Every box of ``data`` (one or more concatenated ``pssh`` boxes).

    :param drm: the label CHALLENGE_INVALID reasons start with.
    :raises ProxyError: CHALLENGE_INVALID when a box is truncated or not a ``pssh``.
    """
    boxes: list[PsshBox] = []
    offset, end = 0, len(data)
    while offset < end:
        if len(boxes) >= MAX_BOXES:
            raise invalid(drm, f"more than {MAX_BOXES} pssh boxes")
        if end - offset < 8:
            raise invalid(drm, "truncated pssh box header")
        size, kind = _HEADER.unpack_from(data, offset)
        header = 8
        if size == 1:
            if end - offset < 16:
                raise invalid(drm, "truncated pssh box header")
            (size,) = struct.unpack_from(">Q", data, offset + 8)
            header = 16
        elif size == 0:
            size = end - offset
        if kind != b"pssh":
            raise invalid(drm, "init data holds a box that is not a pssh")
        if size < header + 4 + 16 + 4 or size > end - offset:
            raise invalid(drm, "a pssh box size does not fit the data")
        boxes.append(_parse_box(data[offset + header : offset + size], drm))
        offset += size
    if not boxes:
        raise invalid(drm, "no pssh box")
    return boxes


def _parse_box(body: bytes, drm: str) -> PsshBox:
    version = body[0]
    if version > 1:
        raise invalid(drm, f"pssh box version {version} is not 0 or 1")
    system_id = body[4:20]
    pos = 20
    key_ids: list[bytes] = []
    if version == 1:
        if len(body) < pos + 4:
            raise invalid(drm, "truncated pssh key id count")
        (count,) = struct.unpack_from(">I", body, pos)
        pos += 4
        if count > MAX_KEY_IDS:
            raise invalid(drm, f"a pssh box lists more than {MAX_KEY_IDS} key ids")
        if len(body) < pos + 16 * count:
            raise invalid(drm, "truncated pssh key id list")
        key_ids = [body[pos + 16 * i : pos + 16 * (i + 1)] for i in range(count)]
        pos += 16 * count
    if len(body) < pos + 4:
        raise invalid(drm, "truncated pssh data size")
    (data_size,) = struct.unpack_from(">I", body, pos)
    pos += 4
    if data_size != len(body) - pos:
        raise invalid(drm, "pssh data size does not match the box size")
    return PsshBox(version, system_id, tuple(key_ids), body[pos:])
