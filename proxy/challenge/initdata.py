"""Init data: what content carries for the CDM, read so that "which key ids does my content
ask for" has an answer (``license-proxy inspect``, ``InspectChallenge``).

Formats read, whatever the DRM system:

- ``pssh``: one or more ISO/IEC 23001-7 ``pssh`` boxes, version 0 or 1, any system id
  (the payloads of Widevine and PlayReady boxes are read too);
- ``playready_object``: a PlayReady Header Object (PRO) as ``mspr:pro`` carries it;
- ``wrmheader``: a bare ``WRMHEADER`` (UTF-8 or UTF-16);
- ``keyids``: W3C ``keyids`` init data, ``{"kids": [...]}`` (the same form as a ClearKey
  release message; it is read as init data only when no DRM system is named).

None of them is a license challenge: the license pipeline refuses them with a sentence
that says what they are.
"""

from __future__ import annotations

import json
import struct
import uuid
from dataclasses import dataclass, field
from typing import Any

from proxy.challenge.clearkey import parse_clearkey
from proxy.challenge.common import KeyIds, Warnings, content_id_text, invalid, safe_text
from proxy.challenge.playready import DRM as PLAYREADY
from proxy.challenge.playready import read_header
from proxy.challenge.pssh import (
    COMMON_SYSTEM_ID,
    PLAYREADY_LEGACY_SYSTEM_ID,
    PLAYREADY_SYSTEM_ID,
    WIDEVINE_SYSTEM_ID,
    PsshBox,
    looks_like_pssh,
    parse_pssh_boxes,
)
from proxy.challenge.widevine import decode_pssh_data, pssh_data_details
from proxy.challenge.xmlsafe import local_name, parse_xml
from proxy.drm import DrmSystem, key_id_uuid
from proxy.errors import ProxyError

PSSH = "pssh"
PLAYREADY_OBJECT = "playready_object"
WRMHEADER = "wrmheader"
KEYIDS = "keyids"

#: PlayReady Object record types (PlayReady Header Object specification).
_RIGHTS_MANAGEMENT_HEADER = 1
_EMBEDDED_LICENSE_STORE = 3
#: Most records one PlayReady Object may hold.
MAX_PRO_RECORDS = 16
_WRMHEADER_MARKS = (b"WRMHEADER", "WRMHEADER".encode("utf-16-le"))


@dataclass(slots=True)
class ProtectionSystemData:
    """One DRM system's entry in init data: a ``pssh`` box, or a PlayReady header."""

    system_id: bytes
    system: str
    pssh_version: int = 0
    key_ids: tuple[bytes, ...] = ()
    content_id: str | None = None
    details: dict[str, Any] = field(default_factory=dict)

    @property
    def system_uuid(self) -> str:
        """The system id as a UUID string."""
        return str(uuid.UUID(bytes=self.system_id))


@dataclass(slots=True)
class InitDataInfo:
    """What init data holds: its format, and one entry per protection system."""

    format: str
    systems: list[ProtectionSystemData]
    warnings: list[str] = field(default_factory=list)

    @property
    def key_ids(self) -> tuple[bytes, ...]:
        """Every key id any entry names, in the order first seen."""
        seen: dict[bytes, None] = {}
        for system in self.systems:
            seen.update(dict.fromkeys(system.key_ids))
        return tuple(seen)

    @property
    def key_id_uuids(self) -> list[str]:
        """The key ids as UUID strings."""
        return [key_id_uuid(k) for k in self.key_ids]

    @property
    def drm_system(self) -> DrmSystem | None:
        """The DRM system when every entry belongs to the same known one, else None."""
        names = {system.system for system in self.systems}
        if len(names) == 1:
            try:
                return DrmSystem(names.pop())
            except ValueError:
                return None
        return None

    @property
    def content_id(self) -> str | None:
        """The first content id an entry names."""
        return next((s.content_id for s in self.systems if s.content_id), None)


def looks_like_init_data(body: bytes) -> bool:
    """A cheap sniff for init data that can never be a license challenge: ``pssh`` boxes,
    a PlayReady Object, a bare ``WRMHEADER`` (W3C ``keyids`` is not included: it has the
    form of a ClearKey release message)."""
    return looks_like_pssh(body) or _looks_like_pro(body) or _looks_like_wrmheader(body)


def describe_format(body: bytes) -> str:
    """A few words saying which init data ``body`` is (for refusals)."""
    if looks_like_pssh(body):
        return "CENC init data (a pssh box)"
    if _looks_like_pro(body):
        return "a PlayReady Header Object"
    return "a PlayReady WRMHEADER"


def _looks_like_pro(body: bytes) -> bool:
    if len(body) < 10:
        return False
    length, count = struct.unpack_from("<IH", body)
    return length == len(body) and 1 <= count <= MAX_PRO_RECORDS


def _looks_like_wrmheader(body: bytes) -> bool:
    head = body[:160]
    return any(mark in head for mark in _WRMHEADER_MARKS) and b"Envelope" not in head


def parse_init_data(body: bytes, drm: DrmSystem | None = None) -> InitDataInfo | None:
    """Read ``body`` as init data; None when it is none of the formats.

    :param drm: the DRM system the caller named: W3C ``keyids`` is read only when none
        was (with ``clearkey`` named the same bytes are a release message).
    :raises ProxyError: CHALLENGE_INVALID when it is init data but unreadable.
    """
    if looks_like_pssh(body):
        return _pssh(body)
    if _looks_like_pro(body):
        warnings = Warnings()
        system = _playready_system(0, body, warnings)
        return InitDataInfo(PLAYREADY_OBJECT, [system], warnings.result())
    if _looks_like_wrmheader(body):
        warnings = Warnings()
        system = ProtectionSystemData(PLAYREADY_SYSTEM_ID, DrmSystem.PLAYREADY.value)
        _read_wrmheader(body, system, warnings)
        return InitDataInfo(WRMHEADER, [system], warnings.result())
    if drm is None and _is_keyids(body):
        info = parse_clearkey(body)
        system = ProtectionSystemData(
            COMMON_SYSTEM_ID, DrmSystem.CLEARKEY.value, key_ids=info.key_ids
        )
        note = "a ClearKey license release message has the same form"
        return InitDataInfo(KEYIDS, [system], [note, *info.warnings])
    return None


def _is_keyids(body: bytes) -> bool:
    head = body[:256].lstrip()
    if not head.startswith(b"{") or b'"kids"' not in body:
        return False
    try:
        doc = json.loads(body.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError):
        return False
    return isinstance(doc, dict) and "type" not in doc


def _pssh(body: bytes) -> InitDataInfo:
    warnings = Warnings()
    systems = []
    for index, box in enumerate(parse_pssh_boxes(body, "init data")):
        systems.append(_box(index, box, warnings))
    return InitDataInfo(PSSH, systems, warnings.result())


def _box(index: int, box: PsshBox, warnings: Warnings) -> ProtectionSystemData:
    if box.system_id in (PLAYREADY_SYSTEM_ID, PLAYREADY_LEGACY_SYSTEM_ID):
        system = _playready_system(index, box.data, warnings) if box.data else None
        if system is None:
            system = ProtectionSystemData(box.system_id, box.system)
        system.system_id = box.system_id
        system.pssh_version = box.version
        system.key_ids = _merged(box.key_ids, system.key_ids)
        if box.system_id == PLAYREADY_LEGACY_SYSTEM_ID:
            warnings.add(f"box {index}: the byte-swapped (legacy) PlayReady system id")
        return system
    system = ProtectionSystemData(box.system_id, box.system, box.version, box.key_ids)
    if box.system_id == WIDEVINE_SYSTEM_ID and box.data:
        _read_widevine(index, box.data, system, warnings)
    elif box.data and box.system_id != COMMON_SYSTEM_ID:
        system.details["data_bytes"] = len(box.data)
    return system


def _merged(first: tuple[bytes, ...], second: tuple[bytes, ...]) -> tuple[bytes, ...]:
    return tuple(dict.fromkeys((*first, *second)))


def _read_widevine(
    index: int, raw: bytes, system: ProtectionSystemData, warnings: Warnings
) -> None:
    try:
        data = decode_pssh_data(raw)
    except ProxyError:
        warnings.add(f"box {index}: the Widevine pssh data is unreadable")
        return
    key_ids = KeyIds("Widevine")
    for key_id in (*system.key_ids, *data.key_ids):
        key_ids.add(key_id, "a pssh data key id")
    system.key_ids = key_ids.result()
    if data.HasField("content_id") and data.content_id:
        system.content_id = content_id_text(bytes(data.content_id))
    pssh_data_details(data, system.details)


def _playready_system(index: int, pro: bytes, warnings: Warnings) -> ProtectionSystemData:
    """A PlayReady Object: ``length(u32le) count(u16le)`` then records of
    ``type(u16le) length(u16le) value``; the rights management header record holds a
    UTF-16LE WRMHEADER."""
    system = ProtectionSystemData(PLAYREADY_SYSTEM_ID, DrmSystem.PLAYREADY.value)
    if len(pro) < 6:
        raise invalid(PLAYREADY, "the PlayReady Object is truncated")
    length, count = struct.unpack_from("<IH", pro)
    if length != len(pro):
        raise invalid(PLAYREADY, "the PlayReady Object's length does not match its size")
    if not 1 <= count <= MAX_PRO_RECORDS:
        raise invalid(PLAYREADY, f"the PlayReady Object holds {count} records")
    offset = 6
    headers = 0
    for _ in range(count):
        if len(pro) - offset < 4:
            raise invalid(PLAYREADY, "a PlayReady Object record is truncated")
        kind, size = struct.unpack_from("<HH", pro, offset)
        offset += 4
        if size > len(pro) - offset:
            raise invalid(PLAYREADY, "a PlayReady Object record runs past its end")
        value = pro[offset : offset + size]
        offset += size
        if kind == _RIGHTS_MANAGEMENT_HEADER:
            headers += 1
            if headers == 1:
                _read_wrmheader(value, system, warnings)
            else:
                warnings.add(f"box {index}: more than one WRMHEADER; the first is read")
        elif kind == _EMBEDDED_LICENSE_STORE:
            system.details["playready_embedded_license_store_bytes"] = size
        else:
            warnings.add(f"box {index}: PlayReady Object record type {kind} ignored")
    if offset != len(pro):
        warnings.add(f"box {index}: bytes after the last PlayReady Object record")
    if headers == 0:
        warnings.add(f"box {index}: the PlayReady Object holds no WRMHEADER")
    return system


def _read_wrmheader(xml: bytes, system: ProtectionSystemData, warnings: Warnings) -> None:
    # A PRO record's WRMHEADER is UTF-16LE with no byte-order mark: parse_xml knows it by
    # its first character, as it knows UTF-8 and UTF-16 with a mark.
    root = parse_xml(xml, PLAYREADY)
    if local_name(root) != "WRMHEADER":
        name = safe_text(local_name(root), 48)
        raise invalid(PLAYREADY, f"{name} is not a WRMHEADER")
    key_ids = KeyIds(PLAYREADY)
    read_header(root, key_ids, system.details, warnings)
    system.key_ids = _merged(system.key_ids, key_ids.result())


__all__ = [
    "KEYIDS",
    "PLAYREADY_OBJECT",
    "PSSH",
    "WRMHEADER",
    "InitDataInfo",
    "ProtectionSystemData",
    "describe_format",
    "looks_like_init_data",
    "parse_init_data",
]
