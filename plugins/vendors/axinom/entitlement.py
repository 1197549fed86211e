"""The Entitlement Message v2 sections rendered from the elected policy: ``license``,
the inline keys and their ``content_key_usage_policies``.

What an Entitlement Message carries per DRM is :data:`RENDERINGS`.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from proxy import RENEWAL_FIELDS, TRACK_FIELDS, DrmSystem, Rendering, guid
from proxy.policy import (
    DEFAULT_TRACK,
    CgmsA,
    EffectivePolicy,
    Hdcp,
    LicenseSettings,
    PlayReadyOutputProtection,
    TrackRules,
)

#: Our HDCP names -> Axinom's Widevine ``hdcp`` values ("2.0" etc. per its docs).
WIDEVINE_HDCP = {
    Hdcp.NONE: "NONE",
    Hdcp.V1: "1.0",
    Hdcp.V2: "2.0",
    Hdcp.V2_1: "2.1",
    Hdcp.V2_2: "2.2",
    Hdcp.V2_3: "2.3",
    Hdcp.NO_DIGITAL_OUTPUT: "NO_DIGITAL_OUTPUT",
}
WIDEVINE_CGMS = {CgmsA.COPY_FREE: "free", CgmsA.COPY_ONCE: "once", CgmsA.COPY_NEVER: "never"}

AXINOM_DRMS = frozenset({DrmSystem.WIDEVINE, DrmSystem.PLAYREADY, DrmSystem.FAIRPLAY})
_LICENSE = frozenset(
    {"persistent", "license_duration", "rental_duration", "playback_duration", "expiry"}
)
#: What an Entitlement Message carries per DRM: dates, durations (the rental window
#: folded into ``duration``) and persistence for all; playback and renewal for Widevine
#: only (``can_play = false`` elsewhere is refused by the proxy); every track rule of the
#: DRM in usage policies, per key too; keys of disallowed track types left out.
RENDERINGS = {
    drm: Rendering(
        license=_LICENSE
        | (frozenset({"can_play", *RENEWAL_FIELDS}) if drm is DrmSystem.WIDEVINE else frozenset()),
        tracks=frozenset(TRACK_FIELDS[drm]),
        allowed_track_types=True,
        per_key=True,
    )
    for drm in AXINOM_DRMS
}


def _rules_doc(rules: TrackRules) -> dict[str, Any]:
    """One content key usage policy body (``widevine``/``playready``/``fairplay``)."""
    widevine: dict[str, Any] = {}
    if rules.widevine_security_level is not None:
        widevine["device_security_level"] = rules.widevine_security_level.name
    if rules.hdcp is not None:
        widevine["hdcp"] = WIDEVINE_HDCP[rules.hdcp]
    if rules.cgms_a is not None:
        widevine["cgms-a"] = WIDEVINE_CGMS[rules.cgms_a]
    if rules.disable_analog_output is not None:
        widevine["disable_analog_output"] = rules.disable_analog_output
    playready: dict[str, Any] = {}
    if rules.playready_min_security_level is not None:
        playready["min_device_security_level"] = int(rules.playready_min_security_level)
    opl = rules.playready_output_protection
    if opl is not None:
        for name in PlayReadyOutputProtection.model_fields:
            value = getattr(opl, name)
            if value is not None:
                playready[f"{name}_opl"] = value
    fairplay: dict[str, Any] = {}
    if rules.fairplay_hdcp is not None:
        fairplay["hdcp"] = rules.fairplay_hdcp.value
    if rules.fairplay_allow_airplay is not None:
        fairplay["allow_airplay"] = rules.fairplay_allow_airplay
    if rules.fairplay_allow_av_adapter is not None:
        fairplay["allow_av_adapter"] = rules.fairplay_allow_av_adapter
    doc: dict[str, Any] = {}
    for name, section in (("widevine", widevine), ("playready", playready), ("fairplay", fairplay)):
        if section:
            doc[name] = section
    return doc


def iso(instant: datetime | float) -> str:
    """An instant (or epoch seconds) as Axinom writes dates: ISO 8601, UTC, to the second."""
    if isinstance(instant, int | float):
        instant = datetime.fromtimestamp(instant, UTC)
    elif instant.tzinfo is None:
        instant = instant.replace(tzinfo=UTC)
    return instant.isoformat(timespec="seconds")


def license_duration(settings: LicenseSettings) -> int | None:
    """``license.duration``: the license duration, or the rental window when shorter.

    Axinom has no rental window of its own; the shorter of the two is never looser
    than the policy. 0 (unlimited) gives way to any limit.
    """
    limits = [d for d in (settings.license_duration, settings.rental_duration) if d]
    if limits:
        return min(limits)
    return settings.license_duration if settings.license_duration is not None else None


def license_section(settings: LicenseSettings) -> dict[str, Any]:
    """``license``: persistence, durations, dates, and the Widevine-only settings.

    :param settings: the license settings :func:`proxy.prepare`
        returned (window checked, durations capped by ``expiry``).
    """
    doc: dict[str, Any] = {}
    if settings.start is not None:
        doc["start_datetime"] = iso(settings.start)
    if settings.expiry is not None:
        doc["expiration_datetime"] = iso(settings.expiry)
    duration = license_duration(settings)
    if duration is not None:
        doc["duration"] = duration
    if settings.persistent is not None:
        doc["allow_persistence"] = settings.persistent
    playback = settings.playback_duration
    widevine: dict[str, Any] = {}
    if settings.can_play is not None:
        widevine["allow_playback"] = settings.can_play
    if playback is not None:
        widevine["playback_duration"] = playback
        doc["playready"] = {"playback_duration": playback}
        doc["fairplay"] = {"playback_duration": playback}
    renewal = settings.renewal
    if renewal.enabled is not None:
        widevine["allow_renewal"] = renewal.enabled
    if renewal.enabled:
        for ours, theirs in (
            ("delay", "renewal_delay"),
            ("recovery_window", "renewal_recovery"),
            ("retry_interval", "renewal_retry_interval"),
            ("renew_with_usage", "renew_with_usage"),
            ("url", "renewal_url"),
        ):
            value = getattr(renewal, ours)
            if value is not None:
                widevine[theirs] = value
    if widevine:
        doc["widevine"] = widevine
    return doc


def usage_policies(
    policy: EffectivePolicy, key_ids: tuple[bytes, ...]
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """The inline keys (GUIDs, each naming its usage policy) and the usage policies.

    Keys of a track type the policy does not allow are left out. Each track
    type's rules become a policy named after it; a key with rules of its own
    gets a policy named after the key. A key whose rules are empty names no
    policy, so Axinom's defaults apply to it.
    """
    allowed = policy.allowed_track_types
    inline: list[dict[str, Any]] = []
    policies: dict[str, dict[str, Any]] = {}
    for key_id in key_ids:
        track = policy.key_track_types.get(key_id)
        if allowed is not None and track is not None and track not in allowed:
            continue
        if key_id in policy.key_rules:
            name, rules = f"key-{guid(key_id)}", policy.key_rules[key_id]
        else:
            rules = policy.rules_for_track(track)
            own = track is not None and track.value in policy.tracks
            name = track.value if own and track is not None else DEFAULT_TRACK
        entry: dict[str, Any] = {"id": guid(key_id)}
        body = _rules_doc(rules)
        if body:
            entry["usage_policy"] = name
            policies.setdefault(name, {"name": name, **body})
        inline.append(entry)
    return inline, list(policies.values())
