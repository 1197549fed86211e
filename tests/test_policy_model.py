"""The policy model: every field the vendor documents name has a place, values round-trip,
"unset" stays apart from false/0, and tightening only ever tightens."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime
from typing import Any

import pytest
from pydantic import BaseModel, ValidationError

from proxy.model import DrmSystem
from proxy.policy import (
    DEFAULT_TRACK,
    STRICTNESS,
    CgmsA,
    EffectivePolicy,
    FairPlayHdcp,
    Hdcp,
    LicenseSettings,
    PlayReadyOutputProtection,
    PlayReadySecurityLevel,
    Policy,
    PolicyMatch,
    RenewalSettings,
    TrackRules,
    TrackType,
    WidevineSecurityLevel,
)

# -- every field the seed documents name, and where it lives in the model ----------------
#
# (source, the vendor's field, path in a [[policies]] entry, a value as config gives it,
#  the value the model holds). Sources: WV = the Azure/MK.IO Widevine license template
# (policy_overrides, content_key_specs); AX = Axinom entitlement message v2 (usage
# policies, per-DRM license overrides); VMX = Verimatrix license-server claims.
SEED_FIELDS: list[tuple[str, str, str, Any, Any]] = [
    ("WV", "policy_overrides.can_play", "license.can_play", True, True),
    ("WV", "policy_overrides.can_persist", "license.persistent", True, True),
    ("WV", "policy_overrides.can_renew", "license.renewal.enabled", True, True),
    ("WV", "policy_overrides.license_duration_seconds", "license.license_duration", "1h", 3600),
    ("WV", "policy_overrides.rental_duration_seconds", "license.rental_duration", "2d", 172800),
    ("WV", "policy_overrides.playback_duration_seconds", "license.playback_duration", 7200, 7200),
    (
        "WV",
        "policy_overrides.renewal_recovery_duration_seconds",
        "license.renewal.recovery_window",
        "10m",
        600,
    ),
    (
        "WV",
        "policy_overrides.renewal_server_url",
        "license.renewal.url",
        "https://renew.example/wv",
        "https://renew.example/wv",
    ),
    ("WV", "policy_overrides.renewal_delay_seconds", "license.renewal.delay", 300, 300),
    (
        "WV",
        "policy_overrides.renewal_retry_interval_seconds",
        "license.renewal.retry_interval",
        "30s",
        30,
    ),
    ("WV", "policy_overrides.renew_with_usage", "license.renewal.renew_with_usage", True, True),
    (
        "WV",
        "allowed_track_types",
        "allowed_track_types",
        ["SD", "HD"],
        [TrackType.SD, TrackType.HD],
    ),
    ("WV", "content_key_specs.track_type", "tracks.UHD1", {}, TrackRules()),
    (
        "WV",
        "content_key_specs.security_level",
        "tracks.HD.widevine_security_level",
        5,
        WidevineSecurityLevel.HW_SECURE_ALL,
    ),
    (
        "WV",
        "content_key_specs.required_output_protection.hdcp",
        "tracks.HD.hdcp",
        "HDCP_V2",
        Hdcp.V2,
    ),
    (
        "WV",
        "content_key_specs.required_output_protection.cgms_flags",
        "tracks.HD.cgms_a",
        "COPY_NEVER",
        CgmsA.COPY_NEVER,
    ),
    (
        "AX",
        "content_key_usage_policies[].name",
        "tracks.SD",
        {"hdcp": "HDCP_V1"},
        TrackRules(hdcp=Hdcp.V1),
    ),
    (
        "AX",
        "content_key_usage_policies[].fairplay.hdcp",
        "tracks.HD.fairplay_hdcp",
        "TYPE1_STRICT",
        FairPlayHdcp.TYPE1_STRICT,
    ),
    (
        "AX",
        "content_key_usage_policies[].fairplay.allow_airplay",
        "tracks.HD.fairplay_allow_airplay",
        False,
        False,
    ),
    (
        "AX",
        "content_key_usage_policies[].fairplay.allow_av_adapter",
        "tracks.HD.fairplay_allow_av_adapter",
        False,
        False,
    ),
    (
        "AX",
        "content_key_usage_policies[].widevine.device_security_level",
        "tracks.HD.widevine_security_level",
        "HW_SECURE_ALL",
        WidevineSecurityLevel.HW_SECURE_ALL,
    ),
    (
        "AX",
        "content_key_usage_policies[].widevine.cgms-a",
        "tracks.SD.cgms_a",
        "never",
        CgmsA.COPY_NEVER,
    ),
    (
        "AX",
        "content_key_usage_policies[].widevine.hdcp",
        "tracks.HD.hdcp",
        "NO_DIGITAL_OUTPUT",
        Hdcp.NO_DIGITAL_OUTPUT,
    ),
    (
        "AX",
        "content_key_usage_policies[].playready.min_device_security_level",
        "tracks.HD.playready_min_security_level",
        "3000",
        PlayReadySecurityLevel.SL3000,
    ),
    (
        "AX",
        "content_key_usage_policies[].playready.analog_video_opl",
        "tracks.HD.playready_output_protection.analog_video",
        200,
        200,
    ),
    (
        "AX",
        "content_key_usage_policies[].playready.compressed_digital_audio_opl",
        "tracks.HD.playready_output_protection.compressed_digital_audio",
        300,
        300,
    ),
    (
        "AX",
        "content_key_usage_policies[].playready.uncompressed_digital_audio_opl",
        "tracks.HD.playready_output_protection.uncompressed_digital_audio",
        300,
        300,
    ),
    (
        "AX",
        "content_key_usage_policies[].playready.compressed_digital_video_opl",
        "tracks.HD.playready_output_protection.compressed_digital_video",
        500,
        500,
    ),
    (
        "AX",
        "content_key_usage_policies[].playready.uncompressed_digital_video_opl",
        "tracks.SD.playready_output_protection.uncompressed_digital_video",
        270,
        270,
    ),
    (
        "AX",
        "license.playready.duration",
        "license_overrides.playready.license_duration",
        "12h",
        43200,
    ),
    (
        "AX",
        "license.fairplay.allow_persistence",
        "license_overrides.fairplay.persistent",
        False,
        False,
    ),
    (
        "AX",
        "license.widevine.allow_persistence",
        "license_overrides.widevine.persistent",
        True,
        True,
    ),
    (
        "VMX",
        "security_policy.<id>.widevine.security_level",
        "tracks.UHD2.widevine_security_level",
        4,
        WidevineSecurityLevel.HW_SECURE_DECODE,
    ),
    (
        "VMX",
        "security_policy.<id>.widevine.required_output_protection.hdcp",
        "tracks.UHD1.hdcp",
        "HDCP_V2_2",
        Hdcp.V2_2,
    ),
    (
        "VMX",
        "security_policy.<id>.widevine.required_output_protection.disable_analog_output",
        "tracks.UHD1.disable_analog_output",
        True,
        True,
    ),
    (
        "VMX",
        "security_policy.<id>.widevine.required_output_protection.cgms_flags",
        "tracks.AUDIO.cgms_a",
        "COPY_ONCE",
        CgmsA.COPY_ONCE,
    ),
    (
        "VMX",
        "default_security_policy",
        "tracks.DEFAULT",
        {"hdcp": "HDCP_V1"},
        TrackRules(hdcp=Hdcp.V1),
    ),
    ("VMX", "track_type_policy.<type>", "tracks.AUDIO", {}, TrackRules()),
    ("VMX", "policy.widevine.license_duration", "license.license_duration", 600, 600),
    ("VMX", "policy.widevine.can_play", "license.can_play", False, False),
    ("VMX", "policy.widevine.can_renew", "license.renewal.enabled", False, False),
    ("VMX", "policy.widevine.can_persist", "license.persistent", False, False),
]

#: Seed fields that have their place outside a [[policies]] entry, and where.
SEED_FIELDS_ELSEWHERE: dict[str, str] = {
    "WV content_key_specs.key_id": "EffectivePolicy.key_track_types, from [catalog] or a claim",
    "AX content_keys_source.inline[].usage_policy": "EffectivePolicy.key_rules, from trusted claims",
    "VMX track_policy.<key id>": "EffectivePolicy.key_rules, from trusted claims",
    "WV policy_name": "[policy_election] name_claim: a token names its policy",
    "WV content_key_specs.key": "not policy: content keys belong to the backend",
}


#: What each seed names, as the seeds list them; each must be in one of the tables above.
SEED_NAMES: dict[str, list[str]] = {
    "WV": [
        *(
            f"policy_overrides.{n}"
            for n in (
                "can_play",
                "can_persist",
                "can_renew",
                "license_duration_seconds",
                "rental_duration_seconds",
                "playback_duration_seconds",
                "renewal_server_url",
                "renewal_delay_seconds",
                "renewal_retry_interval_seconds",
                "renewal_recovery_duration_seconds",
                "renew_with_usage",
            )
        ),
        "allowed_track_types",
        "policy_name",
        "content_key_specs.track_type",
        "content_key_specs.security_level",
        "content_key_specs.required_output_protection.hdcp",
        "content_key_specs.required_output_protection.cgms_flags",
        "content_key_specs.key",
        "content_key_specs.key_id",
    ],
    "AX": [
        "content_key_usage_policies[].name",
        "content_key_usage_policies[].fairplay.hdcp",
        "content_key_usage_policies[].fairplay.allow_airplay",
        "content_key_usage_policies[].fairplay.allow_av_adapter",
        "content_key_usage_policies[].widevine.device_security_level",
        "content_key_usage_policies[].widevine.cgms-a",
        "content_key_usage_policies[].widevine.hdcp",
        "content_key_usage_policies[].playready.min_device_security_level",
        *(
            f"content_key_usage_policies[].playready.{n}_opl"
            for n in (
                "analog_video",
                "compressed_digital_audio",
                "uncompressed_digital_audio",
                "compressed_digital_video",
                "uncompressed_digital_video",
            )
        ),
        "content_keys_source.inline[].usage_policy",
        "license.playready.duration",
        "license.fairplay.allow_persistence",
        "license.widevine.allow_persistence",
    ],
    "VMX": [
        "security_policy.<id>.widevine.security_level",
        "security_policy.<id>.widevine.required_output_protection.hdcp",
        "security_policy.<id>.widevine.required_output_protection.disable_analog_output",
        "security_policy.<id>.widevine.required_output_protection.cgms_flags",
        "default_security_policy",
        "track_policy.<key id>",
        "track_type_policy.<type>",
        "policy.widevine.license_duration",
        "policy.widevine.can_play",
        "policy.widevine.can_renew",
        "policy.widevine.can_persist",
    ],
}


def test_every_name_the_seeds_use_is_in_a_table():
    placed = {f"{s} {f}" for s, f, *_ in SEED_FIELDS} | set(SEED_FIELDS_ELSEWHERE)
    missing = [
        f"{s} {n}" for s, names in SEED_NAMES.items() for n in names if f"{s} {n}" not in placed
    ]
    assert missing == []


def _set(doc: dict[str, Any], path: str, value: Any) -> None:
    *parents, last = path.split(".")
    for part in parents:
        doc = doc.setdefault(part, {})
    doc[last] = value


def _get(obj: Any, path: str) -> Any:
    for part in path.split("."):
        if isinstance(obj, dict):
            obj = obj.get(part) if part in obj else obj.get(DrmSystem(part))
        else:
            obj = getattr(obj, part)
    return obj


def _round_trip(policy: Policy) -> Policy:
    text = json.dumps(policy.model_dump(mode="json", exclude_none=True))
    return Policy.model_validate(json.loads(text))


@pytest.mark.parametrize(
    ("source", "vendor_field", "path", "given", "held"),
    SEED_FIELDS,
    ids=[f"{s}:{f}" for s, f, *_ in SEED_FIELDS],
)
def test_every_seed_field_has_a_place_and_round_trips(source, vendor_field, path, given, held):
    doc: dict[str, Any] = {"name": "p", "backends": ["b"]}
    _set(doc, path, given)
    policy = Policy.model_validate(doc)
    assert _get(policy, path) == held
    again = _round_trip(policy)
    assert again == policy
    assert _get(again, path) == held


def test_the_table_lists_every_model_field():
    """A field added to the model without a row here fails, so the table stays complete."""
    covered = {path for _, _, path, _, _ in SEED_FIELDS}
    leaves: set[str] = set()
    for name in TrackRules.model_fields:
        if name == "playready_output_protection":
            leaves |= {f"{name}.{n}" for n in PlayReadyOutputProtection.model_fields}
        else:
            leaves.add(name)
    track_leaves = {
        p.split(".", 2)[2] for p in covered if p.startswith("tracks.") and p.count(".") >= 2
    }
    assert leaves <= track_leaves
    # start and expiry come from the issue, not from a seed field
    license_leaves = {
        f"license.{n}"
        for n in LicenseSettings.model_fields
        if n not in ("renewal", "start", "expiry")
    }
    license_leaves |= {f"license.renewal.{n}" for n in RenewalSettings.model_fields}
    assert license_leaves <= covered
    tracks = {p.split(".")[1] for p in covered if p.startswith("tracks.")}
    assert {t.value for t in TrackType} | {DEFAULT_TRACK} <= tracks
    assert set(Policy.model_fields) >= {p.split(".")[0] for p in covered}


def test_a_full_policy_round_trips_and_keeps_unset_apart_from_false_and_zero():
    policy = Policy.model_validate(
        {
            "name": "everything",
            "description": "every field set",
            "priority": 7,
            "match": {
                "claims": {"tier": "gold", "groups": ["a", "b"], "sub": {"present": True}},
                "drm_systems": ["widevine", "playready"],
                "content_ids": ["movies/*"],
                "key_ids": ["4060a865-8878-4267-9cbf-91ae5bae1e72"],
            },
            "license": {
                "can_play": True,
                "persistent": False,
                "license_duration": 0,
                "rental_duration": "2d",
                "playback_duration": "48h",
                "start": datetime(2030, 1, 1, tzinfo=UTC),
                "expiry": datetime(2030, 2, 1, tzinfo=UTC),
                "renewal": {"enabled": False},
            },
            "license_overrides": {"fairplay": {"license_duration": "1h"}},
            "allowed_track_types": ["AUDIO", "SD", "HD"],
            "tracks": {
                "DEFAULT": {"widevine_security_level": 1},
                "HD": {
                    "widevine_security_level": "HW_SECURE_ALL",
                    "hdcp": "V2_2",
                    "cgms_a": "COPY_NEVER",
                    "disable_analog_output": True,
                    "playready_min_security_level": 3000,
                    "playready_output_protection": {"uncompressed_digital_video": 300},
                    "fairplay_hdcp": "TYPE1",
                    "fairplay_allow_airplay": False,
                    "fairplay_allow_av_adapter": False,
                },
            },
            "backends": ["primary", "spare"],
            "access": {"ip_allow": ["10.0.0.0/8"], "require_device_id": True},
        }
    )
    assert _round_trip(policy) == policy
    dumped = policy.model_dump(mode="json", exclude_none=True)
    assert dumped["license"]["persistent"] is False
    assert dumped["license"]["license_duration"] == 0
    assert "can_persist" not in dumped["license"] and "renewal_delay" not in dumped["license"]
    assert dumped["license"]["renewal"] == {"enabled": False}
    assert "cgms_a" not in dumped["tracks"]["DEFAULT"]


@pytest.mark.parametrize(
    ("doc", "path", "message"),
    [
        ({"tracks": {"FHD": {}}}, "tracks", "unknown track type"),
        ({"license": {"expiry": "2030-01-01T00:00:00"}}, "license.expiry", "UTC offset"),
        (
            {"license": {"start": "2030-02-01T00:00:00Z", "expiry": "2030-01-01T00:00:00Z"}},
            "license",
            "start must come before expiry",
        ),
        ({"license": {"renewal": {"url": "ftp://x"}}}, "license.renewal.url", "http"),
        ({"license": {"license_duration": "forever"}}, "license.license_duration", "duration"),
        (
            {"tracks": {"HD": {"widevine_security_level": 6}}},
            "tracks.HD.widevine_security_level",
            "",
        ),
        ({"tracks": {"HD": {"hdcp": "HDCP_V9"}}}, "tracks.HD.hdcp", ""),
        (
            {"tracks": {"HD": {"playready_min_security_level": 1000}}},
            "tracks.HD.playready_min_security_level",
            "",
        ),
        (
            {"tracks": {"HD": {"playready_output_protection": {"analog_video": 99}}}},
            "analog_video",
            "",
        ),
        ({"tracks": {"HD": {"hdcp_version": "HDCP_V1"}}}, "tracks.HD.hdcp_version", "Extra"),
        ({"match": {"claims": {"tier": {"equals": "x"}}}}, "match.claims", "present"),
        ({"match": {"key_ids": ["not-a-key"]}}, "match.key_ids", ""),
        ({"backend": "a", "backends": ["b"]}, "", "either backend or backends"),
        (
            {
                "license": {"start": "2030-01-01T00:00:00Z"},
                "license_overrides": {"widevine": {"expiry": "2029-01-01T00:00:00Z"}},
            },
            "",
            "license_overrides.widevine",
        ),
    ],
)
def test_bad_values_are_refused_with_their_path(doc, path, message):
    with pytest.raises(ValidationError) as raised:
        Policy.model_validate({"name": "p", "backends": ["b"], **doc})
    text = str(raised.value)
    assert path.split(".")[-1] in text
    assert message in text


def test_vendor_spellings_are_accepted():
    rules = TrackRules.model_validate(
        {
            "widevine_security_level": "HW_SECURE_CRYPTO",
            "hdcp": "v2.1",
            "cgms_a": "once",
            "playready_min_security_level": "2000",
            "fairplay_hdcp": "type0",
        }
    )
    assert rules.widevine_security_level is WidevineSecurityLevel.HW_SECURE_CRYPTO
    assert rules.hdcp is Hdcp.V2_1
    assert rules.cgms_a is CgmsA.COPY_ONCE
    assert rules.playready_min_security_level is PlayReadySecurityLevel.SL2000
    assert rules.fairplay_hdcp is FairPlayHdcp.TYPE0
    kid = uuid.UUID("4060a865-8878-4267-9cbf-91ae5bae1e72")
    for form in (str(kid), kid.hex, "QGCoZYh4Qmecv5GuW64ecg"):
        assert PolicyMatch(key_ids=[form]).key_ids == [kid]


def test_specificity_counts_conditions():
    assert PolicyMatch().specificity == 0
    assert PolicyMatch(claims={"a": 1, "b": [1, 2]}).specificity == 2
    assert (
        PolicyMatch(claims={"a": 1}, drm_systems=["widevine"], content_ids=["x"]).specificity == 3
    )


def test_license_overrides_apply_to_their_drm_only():
    policy = Policy.model_validate(
        {
            "name": "p",
            "backends": ["b"],
            "license": {
                "persistent": True,
                "license_duration": "30d",
                "renewal": {"enabled": True},
            },
            "license_overrides": {
                "fairplay": {"persistent": False, "renewal": {"delay": 60}},
                "playready": {"license_duration": "1d"},
            },
        }
    )
    fairplay = EffectivePolicy.from_policy(policy, drm_system=DrmSystem.FAIRPLAY).license
    assert fairplay.persistent is False and fairplay.license_duration == 30 * 86400
    assert fairplay.renewal == RenewalSettings(enabled=True, delay=60)
    assert (
        EffectivePolicy.from_policy(policy, drm_system=DrmSystem.PLAYREADY).license.license_duration
        == 86400
    )
    assert (
        EffectivePolicy.from_policy(policy, drm_system=DrmSystem.WIDEVINE).license == policy.license
    )
    assert EffectivePolicy.from_policy(policy).license == policy.license


def test_from_policy_takes_a_plain_list_of_key_ids_as_the_hookspec_example_does():
    policy = Policy(name="p", backends=["b"])
    assert EffectivePolicy.from_policy(policy, (b"\x01" * 16,)).key_track_types == {}


# -- tightening ----------------------------------------------------------------------


T0 = datetime(2030, 1, 1, tzinfo=UTC)
T1 = datetime(2030, 6, 1, tzinfo=UTC)

# (base rules, claim, expected rules, how many ignored)
TRACK_CASES: dict[str, tuple[dict[str, Any], dict[str, Any], dict[str, Any], int]] = {
    "higher security level applies": (
        {"widevine_security_level": 3},
        {"widevine_security_level": 5},
        {"widevine_security_level": 5},
        0,
    ),
    "lower security level is ignored": (
        {"widevine_security_level": 5},
        {"widevine_security_level": 1},
        {"widevine_security_level": 5},
        1,
    ),
    "a level where the policy set none applies": (
        {},
        {"widevine_security_level": 2},
        {"widevine_security_level": 2},
        0,
    ),
    "weaker hdcp is ignored": ({"hdcp": "HDCP_V2"}, {"hdcp": "HDCP_V1"}, {"hdcp": "HDCP_V2"}, 1),
    "no digital output beats any hdcp": (
        {"hdcp": "HDCP_V2_3"},
        {"hdcp": "HDCP_NO_DIGITAL_OUTPUT"},
        {"hdcp": "HDCP_NO_DIGITAL_OUTPUT"},
        0,
    ),
    "copy free is looser than copy once": (
        {"cgms_a": "COPY_ONCE"},
        {"cgms_a": "COPY_FREE"},
        {"cgms_a": "COPY_ONCE"},
        1,
    ),
    "copy never is stricter": (
        {"cgms_a": "COPY_ONCE"},
        {"cgms_a": "COPY_NEVER"},
        {"cgms_a": "COPY_NEVER"},
        0,
    ),
    "analog output can be turned off": (
        {},
        {"disable_analog_output": True},
        {"disable_analog_output": True},
        0,
    ),
    "analog output can't be turned back on": (
        {"disable_analog_output": True},
        {"disable_analog_output": False},
        {"disable_analog_output": True},
        1,
    ),
    "airplay can be forbidden": (
        {"fairplay_allow_airplay": True},
        {"fairplay_allow_airplay": False},
        {"fairplay_allow_airplay": False},
        0,
    ),
    "airplay can't be granted where unset": ({}, {"fairplay_allow_airplay": True}, {}, 1),
    "av adapter can't be granted where forbidden": (
        {"fairplay_allow_av_adapter": False},
        {"fairplay_allow_av_adapter": True},
        {"fairplay_allow_av_adapter": False},
        1,
    ),
    "higher playready level applies": (
        {"playready_min_security_level": 2000},
        {"playready_min_security_level": 3000},
        {"playready_min_security_level": 3000},
        0,
    ),
    "lower playready level is ignored": (
        {"playready_min_security_level": 3000},
        {"playready_min_security_level": 150},
        {"playready_min_security_level": 3000},
        1,
    ),
    "output protection levels field by field": (
        {"playready_output_protection": {"analog_video": 200}},
        {"playready_output_protection": {"analog_video": 150, "compressed_digital_video": 500}},
        {"playready_output_protection": {"analog_video": 200, "compressed_digital_video": 500}},
        1,
    ),
    "stricter fairplay hdcp applies": (
        {"fairplay_hdcp": "TYPE1"},
        {"fairplay_hdcp": "TYPE1_STRICT"},
        {"fairplay_hdcp": "TYPE1_STRICT"},
        0,
    ),
    "looser fairplay hdcp is ignored": (
        {"fairplay_hdcp": "TYPE1"},
        {"fairplay_hdcp": "TYPE0"},
        {"fairplay_hdcp": "TYPE1"},
        1,
    ),
}


@pytest.mark.parametrize("case", TRACK_CASES)
def test_track_rules_only_tighten(case):
    base, claim, expected, ignored = TRACK_CASES[case]
    result = TrackRules.model_validate(base).tightened_by(TrackRules.model_validate(claim))
    assert result.value == TrackRules.model_validate(expected)
    assert len(result.ignored) == ignored
    assert len(result.applied) + ignored >= 1


LICENSE_CASES: dict[str, tuple[dict[str, Any], dict[str, Any], dict[str, Any], int]] = {
    "shorter duration applies": (
        {"license_duration": 7200},
        {"license_duration": 3600},
        {"license_duration": 3600},
        0,
    ),
    "longer duration is ignored": (
        {"license_duration": 3600},
        {"license_duration": 7200},
        {"license_duration": 3600},
        1,
    ),
    "zero (unlimited) is ignored": (
        {"rental_duration": 3600},
        {"rental_duration": 0},
        {"rental_duration": 3600},
        1,
    ),
    "a duration where unlimited applies": (
        {"playback_duration": 0},
        {"playback_duration": 60},
        {"playback_duration": 60},
        0,
    ),
    "a duration where unset applies": ({}, {"license_duration": 60}, {"license_duration": 60}, 0),
    "unlimited where unset is ignored": ({}, {"license_duration": 0}, {}, 1),
    "persistence can be turned off": (
        {"persistent": True},
        {"persistent": False},
        {"persistent": False},
        0,
    ),
    "persistence can't be granted": ({}, {"persistent": True}, {}, 1),
    "persistence can't be turned on": (
        {"persistent": False},
        {"persistent": True},
        {"persistent": False},
        1,
    ),
    "play can be forbidden": ({"can_play": True}, {"can_play": False}, {"can_play": False}, 0),
    "earlier expiry applies": ({"expiry": T1}, {"expiry": T0}, {"expiry": T0}, 0),
    "later expiry is ignored": ({"expiry": T0}, {"expiry": T1}, {"expiry": T0}, 1),
    "later start applies": ({"start": T0}, {"start": T1}, {"start": T1}, 0),
    "earlier start is ignored": ({"start": T1}, {"start": T0}, {"start": T1}, 1),
    "renewal can be turned off": (
        {"renewal": {"enabled": True}},
        {"renewal": {"enabled": False}},
        {"renewal": {"enabled": False}},
        0,
    ),
    "renewal can't be granted": ({}, {"renewal": {"enabled": True}}, {}, 1),
    "shorter recovery window applies": (
        {"renewal": {"recovery_window": 600}},
        {"renewal": {"recovery_window": 60}},
        {"renewal": {"recovery_window": 60}},
        0,
    ),
    "the renewal url is not a claim's to change": (
        {"renewal": {"url": "https://a.example/r"}},
        {"renewal": {"url": "https://evil.example/r"}},
        {"renewal": {"url": "https://a.example/r"}},
        1,
    ),
    "nor the delay or retry interval": (
        {"renewal": {"delay": 60}},
        {"renewal": {"delay": 5, "retry_interval": 1}},
        {"renewal": {"delay": 60}},
        2,
    ),
    "a mixed claim applies the stricter half": (
        {"license_duration": 3600, "persistent": True},
        {"license_duration": 86400, "persistent": False},
        {"license_duration": 3600, "persistent": False},
        1,
    ),
}


@pytest.mark.parametrize("case", LICENSE_CASES)
def test_license_settings_only_tighten(case):
    base, claim, expected, ignored = LICENSE_CASES[case]
    result = LicenseSettings.model_validate(base).tightened_by(
        LicenseSettings.model_validate(claim)
    )
    assert result.value == LicenseSettings.model_validate(expected)
    assert len(result.ignored) == ignored
    for change in result.ignored:
        assert change.field.startswith("license.") and "ignored" in str(change)


def test_most_restrictive_merges_rule_sets_that_touch_one_key():
    a = TrackRules(widevine_security_level=3, fairplay_allow_airplay=True, hdcp=Hdcp.V2)
    b = TrackRules(widevine_security_level=5, hdcp=Hdcp.V1, cgms_a=CgmsA.COPY_ONCE)
    merged = a.most_restrictive(b)
    assert merged == TrackRules(
        widevine_security_level=5, fairplay_allow_airplay=True, hdcp=Hdcp.V2, cgms_a=CgmsA.COPY_ONCE
    )
    assert merged == b.most_restrictive(a)
    assert (
        a.most_restrictive(TrackRules(fairplay_allow_airplay=False)).fairplay_allow_airplay is False
    )
    assert TrackRules().most_restrictive() == TrackRules()
    shorter = LicenseSettings(license_duration=60).most_restrictive(
        LicenseSettings(license_duration=0)
    )
    assert shorter.license_duration == 60


def test_every_field_has_a_strictness():
    """A field added without saying which values are stricter would be frozen for claims;
    this makes the omission visible."""
    for model, orders in STRICTNESS.items():
        for name, info in model.model_fields.items():
            annotation = str(info.annotation)
            nested = any(m.__name__ in annotation for m in STRICTNESS if issubclass(m, BaseModel))
            assert name in orders or nested, f"{model.__name__}.{name} has no strictness"


def test_effective_policy_tightening_methods():
    policy = Policy.model_validate(
        {
            "name": "p",
            "backends": ["b"],
            "tracks": {
                "DEFAULT": {"widevine_security_level": 1},
                "HD": {"widevine_security_level": 3},
            },
        }
    )
    kid = b"\x07" * 16
    effective = EffectivePolicy.from_policy(policy, {kid: TrackType.HD})
    effective.tighten_track("SD", TrackRules(hdcp=Hdcp.V1))
    assert effective.tracks["SD"] == TrackRules(widevine_security_level=1, hdcp=Hdcp.V1)
    result = effective.tighten_key(kid, TrackRules(widevine_security_level=2))
    assert result.ignored and kid not in effective.key_rules
    effective.tighten_key(kid, TrackRules(widevine_security_level=5))
    assert effective.rules_for_key(kid).widevine_security_level == 5
    assert effective.rules_for_track("HD").widevine_security_level == 3
    effective.tighten_license(LicenseSettings(license_duration=60))
    assert effective.to_dict()["license"]["license_duration"] == 60
    assert effective.to_dict()["key_rules"] == {
        str(uuid.UUID(bytes=kid)): {"widevine_security_level": 5}
    }
