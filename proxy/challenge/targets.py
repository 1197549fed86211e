"""Each challenge parser as a target for property tests, fuzzing and benchmarks:
bytes in, and only the typed error out."""

from __future__ import annotations

from collections.abc import Callable
from functools import cache
from typing import Any

from proxy.challenge.clearkey import parse_clearkey
from proxy.challenge.fairplay import (
    GENERIC,
    ContentId,
    ContentIdConvention,
    parse_fairplay,
    read_content_id,
)
from proxy.challenge.initdata import InitDataInfo, parse_init_data
from proxy.challenge.playready import parse_playready
from proxy.challenge.pssh import parse_pssh_boxes
from proxy.challenge.widevine import parse_widevine
from proxy.errors import ProxyError, Reason
from proxy.model import ChallengeInfo


def _fairplay(body: bytes) -> ChallengeInfo:
    return parse_fairplay(body)


@cache
def fairplay_conventions() -> tuple[ContentIdConvention, ...]:
    """Every FairPlay content id convention: the core's and the installed vendors'."""
    from proxy.builder import installed_vendors

    registered = installed_vendors().fairplay_conventions
    return (GENERIC, *(c for name, c in sorted(registered.items()) if c is not GENERIC))


def _content_id(body: bytes) -> list[Any]:
    """Every convention on the same text; a ValueError means "not this convention"."""
    text = body.decode("utf-8", "replace")
    found: list[ContentId | None] = []
    for convention in fairplay_conventions():
        try:
            found.append(read_content_id(text, convention))
        except ValueError:
            found.append(None)
    return found


#: Parser name -> callable. Each raises nothing but ``ProxyError(CHALLENGE_INVALID)``.
TARGETS: dict[str, Callable[[bytes], Any]] = {
    "widevine": parse_widevine,
    "playready": parse_playready,
    "fairplay": _fairplay,
    "clearkey": parse_clearkey,
    "pssh": parse_pssh_boxes,
    "fairplay_content_id": _content_id,
    "initdata": parse_init_data,
}


def run_target(name: str, body: bytes) -> Any:
    """Run one target; return its result, or None when it refused the input as it should.

    :raises AssertionError: when a result breaks an invariant, or a ProxyError
        carries another reason. Any other exception propagates: it is a bug.
    """
    try:
        result = TARGETS[name](body)
    except ProxyError as error:
        assert error.reason is Reason.CHALLENGE_INVALID, error.reason
        assert error.detail and len(error.detail) < 200
        return None
    if isinstance(result, ChallengeInfo):
        check_info(result)
    if isinstance(result, InitDataInfo):
        check_init_data(result)
    return result


def check_init_data(info: InitDataInfo) -> None:
    """The invariants of what init data is read as."""
    assert info.systems
    assert all(len(s.system_id) == 16 for s in info.systems)
    assert all(len(k) == 16 for s in info.systems for k in s.key_ids)
    assert all(isinstance(w, str) and w.isprintable() for w in info.warnings)
    assert all(s.content_id is None or s.content_id.isprintable() for s in info.systems)


def check_info(info: ChallengeInfo) -> None:
    """The invariants every inspector's answer keeps."""
    assert isinstance(info.payload, bytes) and info.payload
    assert len(info.key_ids) <= 64
    assert all(isinstance(k, bytes) and len(k) == 16 for k in info.key_ids)
    assert len(set(info.key_ids)) == len(info.key_ids)
    assert all(isinstance(k, str) and isinstance(v, str) for k, v in info.client.items())
    assert all(v.isprintable() and v.isascii() for v in info.client.values())
    assert all(isinstance(w, str) and w.isprintable() for w in info.warnings)
    assert info.content_id is None or (
        isinstance(info.content_id, str) and info.content_id.isprintable()
    )
