"""What every challenge parser shares: the typed error, key id collection, safe text."""

from __future__ import annotations

import logging
import re
import uuid
from collections.abc import Callable

from proxy.errors import ProxyError, Reason
from proxy.model import ChallengeInfo, RequestContext

log = logging.getLogger("proxy.challenge")

_UNSAFE = re.compile(r"[^\x20-\x7e]")

#: Most key ids one challenge may ask for (the same bound as request hints).
MAX_KEY_IDS = 64
#: Longest client-stated text kept (longer values are cut, with an ellipsis).
MAX_TEXT = 128
#: Most warnings one parse reports; later ones are counted, not listed.
MAX_WARNINGS = 16


def invalid(drm: str, reason: str) -> ProxyError:
    """``CHALLENGE_INVALID`` with a short reason that names the DRM."""
    return ProxyError(Reason.CHALLENGE_INVALID, f"{drm}: {reason}")


def safe_text(value: str | bytes, limit: int = MAX_TEXT) -> str:
    """Client-controlled text made safe to show and log: printable ASCII, bounded.

    Bytes are read as UTF-8 (undecodable bytes replaced); every character that is
    not printable ASCII becomes ``?``, so nothing the client sends can forge a log
    line or a terminal escape.
    """
    if isinstance(value, bytes):
        value = value[: limit * 4].decode("utf-8", "replace")
    text = value[: limit + 1]
    if not (text.isascii() and text.isprintable()):
        text = _UNSAFE.sub("?", text)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def content_id_text(raw: bytes) -> str:
    """A content id carried as bytes, shown as text when it is printable ASCII, else hex."""
    if raw and len(raw) <= 256 and all(0x20 <= b <= 0x7E for b in raw):
        return raw.decode("ascii")
    return raw[:256].hex()


def uuid_text(key_id: bytes) -> str:
    """A 16-byte canonical key id as a UUID string."""
    return str(uuid.UUID(bytes=key_id))


class KeyIds:
    """Collects a challenge's key ids: 16 bytes each, duplicates dropped, order kept, bounded."""

    __slots__ = ("_drm", "_seen")

    def __init__(self, drm: str) -> None:
        self._drm = drm
        self._seen: dict[bytes, None] = {}

    def add(self, key_id: bytes, where: str = "a key id") -> None:
        """Add one canonical key id; CHALLENGE_INVALID when it is not 16 bytes or too many."""
        if len(key_id) != 16:
            raise invalid(self._drm, f"{where} is {len(key_id)} bytes, not 16")
        if key_id not in self._seen:
            if len(self._seen) >= MAX_KEY_IDS:
                raise invalid(self._drm, f"more than {MAX_KEY_IDS} key ids")
            self._seen[key_id] = None

    def __len__(self) -> int:
        return len(self._seen)

    def result(self) -> tuple[bytes, ...]:
        """The key ids in the order first seen."""
        return tuple(self._seen)


class Warnings(list[str]):
    """A bounded list of warnings: past :data:`MAX_WARNINGS` only a count is kept."""

    def __init__(self) -> None:
        super().__init__()
        self.dropped = 0

    def add(self, text: str) -> None:
        """Record one warning (already safe text)."""
        if len(self) < MAX_WARNINGS:
            self.append(text)
        else:
            self.dropped += 1

    def result(self) -> list[str]:
        """The warnings, with a last line saying how many more were dropped."""
        out = list(self)
        if self.dropped:
            out.append(f"{self.dropped} more warning(s) not shown")
        return out


def guarded(drm: str, parse: Callable[[], ChallengeInfo]) -> ChallengeInfo:
    """Run a parser so that nothing but a ``ProxyError`` leaves it.

    The parsers raise only typed errors (the property tests and fuzz targets
    hold them to that); this is the second line: a parser bug becomes
    CHALLENGE_INVALID for the client and a logged traceback (never the bytes)
    for the operator.
    """
    try:
        return parse()
    except ProxyError:
        raise
    except Exception:
        log.exception("the %s challenge parser failed unexpectedly", drm)
        raise invalid(drm, "the challenge is unreadable") from None


def adopt_request_content_id(ctx: RequestContext, info: ChallengeInfo) -> ChallengeInfo:
    """Fill ``info.content_id`` from the request when the challenge names none; refuse a
    request whose ``content_id`` contradicts the challenge's (REQUEST_INVALID), as a
    contradicting key id hint is: entitlement and election key on the content id, so the
    caller must not be able to swap it."""
    requested = ctx.request.content_id
    if requested:
        if info.content_id is None:
            info.content_id = requested
        elif info.content_id != requested:
            raise ProxyError(
                Reason.REQUEST_INVALID,
                "the request's content_id contradicts the challenge's",
                field="content_id",
            )
    return info
