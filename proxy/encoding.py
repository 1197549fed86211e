"""Byte encodings the DRM formats use: base64url without padding, key ids in their forms."""

from __future__ import annotations

import base64
import binascii
import re
import uuid

_B64URL = re.compile(r"^[A-Za-z0-9_-]*={0,2}$")
_HEX32 = re.compile(r"^[0-9a-fA-F]{32}$")


def b64url_encode(data: bytes) -> str:
    """RFC 7515 base64url: ``-`` and ``_``, no ``=`` padding (what ClearKey CDMs require)."""
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def b64url_decode(text: str) -> bytes:
    """Decode base64url with or without padding; ValueError on anything else."""
    if not isinstance(text, str) or not _B64URL.match(text):
        raise ValueError("not base64url")
    text = text.rstrip("=")
    try:
        return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except (binascii.Error, ValueError):
        raise ValueError("not base64url") from None


def parse_key_id(text: str) -> bytes:
    """A 16-byte key id from a UUID, 32 hex digits, or base64/base64url of 16 bytes."""
    text = text.strip()
    if len(text) == 36 and text.count("-") == 4:
        try:
            return uuid.UUID(text).bytes
        except ValueError:
            pass
    if _HEX32.match(text):
        return bytes.fromhex(text)
    try:
        raw = b64url_decode(text.replace("+", "-").replace("/", "_"))
    except ValueError:
        raw = b""
    if len(raw) == 16:
        return raw
    raise ValueError(f"{text!r} is not a key id (UUID, 32 hex digits, or base64 of 16 bytes)")
