"""The DoveRunner policy JSON v2 rendered from the elected policy, and what it can carry.

``{"policy_version": 2, "playback_policy": {...}, "security_policy": [...]}``
(VENDOR_FACTS 10.4): ``playback_policy`` holds persistence, the durations and
``allowed_track_types``; ``security_policy`` one entry per track type with the
DRM's own object (``widevine``, ``playready``, ``fairplay``). What a backend
carries per DRM is :func:`renderings`; the few values DoveRunner has no word
for are refused per request (:class:`proxy.PolicyNotRenderable`).
"""

from __future__ import annotations

from typing import Any

from plugins.vendors.doverunner.settings import DoveRunnerSettings
from proxy import (
    TRACK_FIELDS,
    DrmSystem,
    EffectivePolicy,
    PolicyNotRenderable,
    Rendering,
    TrackRules,
    TrackType,
)
from proxy.policy import FairPlayHdcp, Hdcp, LicenseSettings

VENDOR = "doverunner"
DOVERUNNER_DRMS = frozenset({DrmSystem.WIDEVINE, DrmSystem.PLAYREADY, DrmSystem.FAIRPLAY})
LICENSE = frozenset({"persistent", "license_duration", "rental_duration", "playback_duration"})
#: PlayReady output protection: the parts DoveRunner has a level for (no compressed
#: digital video level).
PLAYREADY_TRACKS = frozenset(
    {
        "playready_min_security_level",
        "playready_output_protection.analog_video",
        "playready_output_protection.uncompressed_digital_video",
        "playready_output_protection.compressed_digital_audio",
        "playready_output_protection.uncompressed_digital_audio",
    }
)
TRACKS = {
    DrmSystem.WIDEVINE: frozenset(TRACK_FIELDS[DrmSystem.WIDEVINE]),
    DrmSystem.PLAYREADY: PLAYREADY_TRACKS,
    DrmSystem.FAIRPLAY: frozenset(TRACK_FIELDS[DrmSystem.FAIRPLAY]),
}
#: ``allowed_track_types`` names and the video types each lets through (audio always).
TRACK_SETS = {
    "SD_ONLY": frozenset({TrackType.SD}),
    "SD_HD": frozenset({TrackType.SD, TrackType.HD}),
    "SD_UHD1": frozenset({TrackType.SD, TrackType.HD, TrackType.UHD1}),
    "SD_UHD2": frozenset({TrackType.SD, TrackType.HD, TrackType.UHD1, TrackType.UHD2}),
}
#: Our HDCP names -> ``required_hdcp_version``; HDCP 2.3 has none, so the stricter
#: ``HDCP_NO_DIGITAL_OUTPUT`` stands for it.
WIDEVINE_HDCP = {
    Hdcp.NONE: "HDCP_NONE",
    Hdcp.V1: "HDCP_V1",
    Hdcp.V2: "HDCP_V2",
    Hdcp.V2_1: "HDCP_V2_1",
    Hdcp.V2_2: "HDCP_V2_2",
    Hdcp.V2_3: "HDCP_NO_DIGITAL_OUTPUT",
    Hdcp.NO_DIGITAL_OUTPUT: "HDCP_NO_DIGITAL_OUTPUT",
}
#: ``hdcp_enforcement``: -1 none, 0 type 0, 1 type 1 (TYPE1_STRICT has no value).
FAIRPLAY_HDCP = {FairPlayHdcp.NONE: -1, FairPlayHdcp.TYPE0: 0, FairPlayHdcp.TYPE1: 1}
#: The levels each PlayReady field takes; a policy level between two is rounded up.
DIGITAL_VIDEO_LEVELS = (100, 250, 270, 300, 301)
ANALOG_VIDEO_LEVELS = (100, 150, 200, 201)
DIGITAL_AUDIO_LEVELS = (100, 250, 300, 301)

_HINTS = {
    "license": "DoveRunner's policy has no field for it",
    "renewal": "DoveRunner's renewal fields are UNVERIFIED, so no renewal rule is rendered",
    "tracks": "DoveRunner's security_policy has no field for it (PlayReady: no compressed "
    "digital video level)",
    "allowed_track_types": "list the DRM in allowed_track_types_drms if DoveRunner leaves "
    "its tracks out (UNVERIFIED beyond Widevine), or serve the policy from a backend that does",
}


def renderings(settings: DoveRunnerSettings) -> dict[DrmSystem, Rendering]:
    """What a DoveRunner backend's policy carries per DRM."""
    return {
        drm: Rendering(
            license=LICENSE,
            tracks=TRACKS[drm],
            allowed_track_types=drm in settings.allowed_track_types_drms,
            per_key=True,
            hints=_HINTS,
        )
        for drm in DOVERUNNER_DRMS
    }


def playback_policy(settings: LicenseSettings) -> dict[str, Any]:
    """``playback_policy`` from the prepared license settings.

    Rental and playback durations are for persistent licenses only; for any other
    license the shortest limit becomes ``license_duration`` (the license then ends
    sooner, never later).
    """
    doc: dict[str, Any] = {}
    if settings.persistent is not None:
        doc["persistent"] = settings.persistent
    if settings.persistent:
        for name in ("license_duration", "rental_duration", "playback_duration"):
            value = getattr(settings, name)
            if value is not None:
                doc[name] = value
        return doc
    durations = (settings.license_duration, settings.rental_duration, settings.playback_duration)
    limits = [d for d in durations if d]
    if limits:
        doc["license_duration"] = min(limits)
    elif settings.license_duration is not None:
        doc["license_duration"] = settings.license_duration
    return doc


def track_set(allowed: tuple[TrackType, ...]) -> str | None:
    """The widest ``allowed_track_types`` name letting through only allowed tracks; None
    when none does (audio not allowed, or no SD)."""
    if TrackType.AUDIO not in allowed:
        return None
    video = set(allowed) - {TrackType.AUDIO}
    fitting = [name for name, types in TRACK_SETS.items() if types <= video]
    return max(fitting, key=lambda n: len(TRACK_SETS[n])) if fitting else None


def _round_up(value: int | None, levels: tuple[int, ...]) -> int | None:
    if value is None:
        return None
    for level in levels:
        if level >= value:
            return level
    raise ValueError(value)


def _widevine(rules: TrackRules) -> dict[str, Any]:
    doc: dict[str, Any] = {}
    if rules.widevine_security_level is not None:
        doc["security_level"] = int(rules.widevine_security_level)
    if rules.hdcp is not None:
        doc["required_hdcp_version"] = WIDEVINE_HDCP[rules.hdcp]
    if rules.cgms_a is not None:
        doc["required_cgms_flags"] = rules.cgms_a.value
    if rules.disable_analog_output is not None:
        doc["disable_analog_output"] = rules.disable_analog_output
    return doc


def _playready(rules: TrackRules, path: str) -> dict[str, Any]:
    doc: dict[str, Any] = {}
    if rules.playready_min_security_level is not None:
        doc["security_level"] = int(rules.playready_min_security_level)
    opl = rules.playready_output_protection
    if opl is None:
        return doc
    audio = [v for v in (opl.compressed_digital_audio, opl.uncompressed_digital_audio) if v]
    for name, value, levels, part in (
        (
            "digital_video_protection_level",
            opl.uncompressed_digital_video,
            DIGITAL_VIDEO_LEVELS,
            "uncompressed_digital_video",
        ),
        ("analog_video_protection_level", opl.analog_video, ANALOG_VIDEO_LEVELS, "analog_video"),
        (
            "digital_audio_protection_level",
            max(audio) if audio else None,
            DIGITAL_AUDIO_LEVELS,
            "uncompressed_digital_audio",
        ),
    ):
        try:
            level = _round_up(value, levels)
        except ValueError:
            raise _Unrenderable(f"{path}.playready_output_protection.{part}") from None
        if level is not None:
            doc[name] = level
    return doc


def _fairplay(rules: TrackRules, path: str) -> dict[str, Any]:
    doc: dict[str, Any] = {}
    if rules.fairplay_hdcp is not None:
        if rules.fairplay_hdcp not in FAIRPLAY_HDCP:
            raise _Unrenderable(f"{path}.fairplay_hdcp")
        doc["hdcp_enforcement"] = FAIRPLAY_HDCP[rules.fairplay_hdcp]
    if rules.fairplay_allow_airplay is not None:
        doc["allow_airplay"] = rules.fairplay_allow_airplay
    if rules.fairplay_allow_av_adapter is not None:
        doc["allow_av_adapter"] = rules.fairplay_allow_av_adapter
    return doc


class _Unrenderable(Exception):
    """A rule value DoveRunner has no word for (its path in the policy)."""


def security_policy(
    policy: EffectivePolicy, drm: DrmSystem, tracks: list[TrackType]
) -> list[dict[str, Any]]:
    """One ``security_policy`` entry per track type that has rules for ``drm``."""
    entries = []
    for track in tracks:
        rules = policy.rules_for_track_and_its_keys(track)
        path = f"tracks.{track.value}"
        if drm is DrmSystem.WIDEVINE:
            body = _widevine(rules)
        elif drm is DrmSystem.PLAYREADY:
            body = _playready(rules, path)
        else:
            body = _fairplay(rules, path)
        if body:
            entries.append({"track_type": track.value, drm.value: body})
    return entries


def policy_v2(
    settings: LicenseSettings,
    policy: EffectivePolicy,
    drm: DrmSystem,
    rendering: Rendering,
    backend: str,
) -> dict[str, Any]:
    """The policy JSON v2 for one request.

    :param settings: the license settings :func:`proxy.prepare` returned.
    :raises PolicyNotRenderable: for an allowed track set DoveRunner can't name without
        licensing a track the policy leaves out, or a rule value it has no word for.
    """
    doc: dict[str, Any] = {"policy_version": 2}
    playback = playback_policy(settings)
    tracks = list(TrackType)
    allowed = policy.allowed_track_types
    if allowed is not None and rendering.allowed_track_types:
        name = track_set(allowed)
        if name is None:
            raise PolicyNotRenderable(backend, VENDOR, drm, ["allowed_track_types"])
        playback["allowed_track_types"] = name
        video = TRACK_SETS[name]
        tracks = [t for t in tracks if t is TrackType.AUDIO or t in video]
    if playback:
        doc["playback_policy"] = playback
    try:
        entries = security_policy(policy, drm, tracks)
    except _Unrenderable as gap:
        raise PolicyNotRenderable(backend, VENDOR, drm, [str(gap)]) from None
    if entries:
        doc["security_policy"] = entries
    return doc
