"""Property tests: random and mutated bytes into every challenge parser and sniffer.

Whatever comes in, a parser answers with a ChallengeInfo that keeps its
invariants or refuses with CHALLENGE_INVALID; no other exception escapes. No
timing is asserted here (DESIGN.md): the time per KiB is reported by
``make fuzz`` and ``bench/challenge.py``.
"""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from proxy.challenge.clearkey import looks_like_clearkey
from proxy.challenge.fairplay import looks_like_fairplay
from proxy.challenge.initdata import looks_like_init_data
from proxy.challenge.playready import looks_like_playready
from proxy.challenge.pssh import looks_like_pssh
from proxy.challenge.samples import seed_challenges
from proxy.challenge.targets import TARGETS, run_target
from proxy.challenge.widevine import looks_like_widevine

SEEDS = seed_challenges()
SEEDS["fairplay_content_id"] = [
    b"skd://4060a865-8878-4267-9cbf-91ae5bae1e72:0123456789abcdef0123456789abcdef",
    b"skd://host/path/asset?kid=4060a865-8878-4267-9cbf-91ae5bae1e72",
]
PROPERTY = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@st.composite
def mutated(draw, seeds: list[bytes]) -> bytes:
    """A seed with a few random edits: flipped bytes, cuts, insertions, duplicated slices."""
    data = bytearray(draw(st.sampled_from(seeds)))
    for _ in range(draw(st.integers(1, 6))):
        kind = draw(st.sampled_from(["flip", "cut", "insert", "dup", "truncate"]))
        at = draw(st.integers(0, len(data)))
        if kind == "flip" and data:
            index = min(at, len(data) - 1)
            data[index] = draw(st.integers(0, 255))
        elif kind == "cut":
            del data[at : at + draw(st.integers(1, 64))]
        elif kind == "insert":
            data[at:at] = draw(st.binary(min_size=1, max_size=32))
        elif kind == "dup":
            data[at:at] = data[at : at + draw(st.integers(1, 256))]
        else:
            del data[at:]
    return bytes(data)


@pytest.mark.parametrize("target", sorted(TARGETS))
@PROPERTY
@given(body=st.binary(max_size=2048))
def test_random_bytes_only_ever_raise_the_typed_error(target, body):
    run_target(target, body)


@pytest.mark.parametrize("target", sorted(TARGETS))
@PROPERTY
@given(data=st.data())
def test_mutated_challenges_only_ever_raise_the_typed_error(target, data):
    run_target(target, data.draw(mutated(SEEDS[target])))


@pytest.mark.parametrize("target", sorted(SEEDS))
def test_every_seed_parses(target):
    for seed in SEEDS[target]:
        assert run_target(target, seed) is not None


SNIFFERS = [
    looks_like_widevine,
    looks_like_playready,
    looks_like_fairplay,
    looks_like_clearkey,
    looks_like_init_data,
]


@settings(max_examples=500, deadline=None)
@given(body=st.binary(max_size=512))
def test_sniffers_never_raise(body):
    for sniff in SNIFFERS:
        assert sniff(body) in (True, False)
    assert looks_like_pssh(body) in (True, False)


def test_each_seed_is_claimed_by_its_own_sniffer_only():
    own = {
        "widevine": looks_like_widevine,
        "playready": looks_like_playready,
        "fairplay": looks_like_fairplay,
        "clearkey": looks_like_clearkey,
    }
    for name, sniff in own.items():
        for seed in SEEDS[name]:
            assert sniff(seed), name
            others = [s.__name__ for n, s in own.items() if n != name and s(seed)]
            assert not others, (name, others)
