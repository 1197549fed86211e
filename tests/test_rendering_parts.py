"""A rendering may carry part of a composite rule, or the rules of some track types only: what it
leaves out is still refused at start (at the part's key path) and per request."""

from __future__ import annotations

import uuid

from proxy import Rendering, config_gaps, request_gaps
from proxy.model import DrmSystem
from proxy.policy import EffectivePolicy, Hdcp, PlayReadyOutputProtection, Policy, TrackType

PR = DrmSystem.PLAYREADY
WV = DrmSystem.WIDEVINE
KID = uuid.UUID("11111111-2222-3333-4444-555555555501").bytes

#: PlayReady output protection in part (no compressed digital video), like DoveRunner's.
IN_PART = Rendering(
    tracks=frozenset(
        {
            "playready_min_security_level",
            "playready_output_protection.analog_video",
            "playready_output_protection.uncompressed_digital_video",
        }
    )
)
#: Widevine rules of HD and UHD keys only, like DRMtoday's quality classes.
SOME_TYPES = Rendering(
    tracks=frozenset({"widevine_security_level", "hdcp"}),
    track_types=frozenset({"HD", "UHD1", "UHD2"}),
    per_key=True,
)


def policy(**doc: object) -> Policy:
    return Policy.model_validate({"name": "p", **doc})


def errors(found: list) -> dict[str, bool]:
    return {gap.field: gap.error for gap in found}


def test_the_parts_a_rendering_leaves_out_are_gaps_at_their_own_path():
    opl = {"analog_video": 200, "uncompressed_digital_video": 300, "compressed_digital_video": 500}
    found = config_gaps(policy(tracks={"HD": {"playready_output_protection": opl}}), PR, IN_PART)
    assert errors(found) == {"tracks.HD.playready_output_protection.compressed_digital_video": True}
    carried = {"analog_video": 200, "uncompressed_digital_video": 300}
    assert (
        config_gaps(policy(tracks={"HD": {"playready_output_protection": carried}}), PR, IN_PART)
        == []
    )


def test_a_composite_rule_named_whole_or_not_at_all_is_judged_whole():
    opl = {"compressed_digital_video": 500}
    whole = Rendering(tracks=frozenset({"playready_output_protection"}))
    assert config_gaps(policy(tracks={"HD": {"playready_output_protection": opl}}), PR, whole) == []
    found = config_gaps(
        policy(tracks={"HD": {"playready_output_protection": opl}}), PR, Rendering()
    )
    assert errors(found) == {"tracks.HD.playready_output_protection": True}


def test_a_claim_tightening_a_part_left_out_is_refused_per_request():
    configured = policy(tracks={"HD": {"playready_output_protection": {"analog_video": 200}}})
    effective = EffectivePolicy.from_policy(configured, drm_system=PR)
    assert request_gaps(effective, PR, IN_PART) == []
    effective.tracks["HD"] = effective.tracks["HD"].model_copy(
        update={
            "playready_output_protection": PlayReadyOutputProtection(
                analog_video=200, compressed_digital_video=500
            )
        }
    )
    assert request_gaps(effective, PR, IN_PART) == [
        "tracks.HD.playready_output_protection.compressed_digital_video"
    ]


def test_rules_of_a_track_type_the_rendering_does_not_reach_are_gaps():
    found = config_gaps(policy(tracks={"SD": {"hdcp": "V1"}, "HD": {"hdcp": "V2"}}), WV, SOME_TYPES)
    assert errors(found) == {"tracks.SD.hdcp": True}


def test_default_rules_are_gaps_when_they_reach_a_type_the_rendering_does_not():
    found = config_gaps(policy(tracks={"DEFAULT": {"hdcp": "V1"}}), WV, SOME_TYPES)
    assert errors(found) == {"tracks.DEFAULT.hdcp": True}
    # Every uncovered type (AUDIO, SD) has rules of its own: DEFAULT reaches covered types only.
    own = {"DEFAULT": {"hdcp": "V1"}, "SD": {}, "AUDIO": {}}
    assert config_gaps(policy(tracks=own), WV, SOME_TYPES) == []


def test_types_whose_keys_are_left_out_do_not_count():
    leaves_out = Rendering(
        tracks=SOME_TYPES.tracks, track_types=SOME_TYPES.track_types, allowed_track_types=True
    )
    doc = {"tracks": {"DEFAULT": {"hdcp": "V1"}}, "allowed_track_types": ["HD", "UHD1"]}
    assert config_gaps(policy(**doc), WV, leaves_out) == []
    assert errors(config_gaps(policy(**doc), WV, SOME_TYPES)) == {
        "tracks.DEFAULT.hdcp": True,
        "allowed_track_types": True,
    }


def test_a_keys_rules_reach_the_vendor_only_through_a_covered_type():
    configured = policy(tracks={"HD": {"hdcp": "V1"}})
    effective = EffectivePolicy.from_policy(configured, {KID: TrackType.HD}, drm_system=WV)
    effective.key_rules[KID] = effective.rules_for_key(KID).model_copy(update={"hdcp": Hdcp.V2})
    assert request_gaps(effective, WV, SOME_TYPES) == []
    effective.key_track_types[KID] = TrackType.SD
    assert request_gaps(effective, WV, SOME_TYPES) == [f"key_rules.{uuid.UUID(bytes=KID)}.hdcp"]
    del effective.key_track_types[KID]  # a key of unknown type may be in any class
    assert request_gaps(effective, WV, SOME_TYPES) == [f"key_rules.{uuid.UUID(bytes=KID)}.hdcp"]
