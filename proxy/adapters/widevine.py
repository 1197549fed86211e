"""The policy in Widevine's own vocabulary: ``policy_overrides``, ``content_key_specs``,
``allowed_track_types``.

Google's license proxy API (``widevine_cloud``) and the Azure/MK.IO Widevine
template (seed 000) share these names, and so may any adapter that speaks them.
Unset policy fields are left out: the vendor's default applies. What such an
adapter renders, and so what a policy served by it may hold, is :data:`WIDEVINE`.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from proxy.adapters.rendering import RENEWAL_FIELDS, TRACK_FIELDS, Rendering
from proxy.model import DrmSystem
from proxy.policy import EffectivePolicy, LicenseSettings, TrackRules, TrackType

#: What an adapter speaking Google's vocabulary (``policy_overrides``,
#: ``content_key_specs``) renders for Widevine: every license and renewal setting,
#: every Widevine track rule, per-key rules folded into their track's spec, and keys of
#: disallowed track types left out.
WIDEVINE = Rendering(
    license=frozenset(
        {"can_play", "persistent", "license_duration", "rental_duration", "playback_duration"}
    )
    | frozenset(RENEWAL_FIELDS),
    tracks=frozenset(TRACK_FIELDS[DrmSystem.WIDEVINE]),
    allowed_track_types=True,
    per_key=True,
)

#: Widevine's ``allowed_track_types`` values and the video track types each lets through
#: (audio always goes with them).
ALLOWED_TRACK_TYPES: dict[str, frozenset[TrackType]] = {
    "SD_ONLY": frozenset({TrackType.SD}),
    "SD_HD": frozenset({TrackType.SD, TrackType.HD}),
    "SD_UHD1": frozenset({TrackType.SD, TrackType.HD, TrackType.UHD1}),
    "SD_UHD2": frozenset({TrackType.SD, TrackType.HD, TrackType.UHD1, TrackType.UHD2}),
}

#: ``status`` values of a Widevine license answer that mean the service failed rather
#: than refused (shaka-packager retries ``INTERNAL_ERROR``): the next backend is tried.
TRANSIENT_STATUSES = frozenset({"INTERNAL_ERROR", "SERVICE_UNAVAILABLE", "BACKEND_UNAVAILABLE"})

#: Every track type, in the order content key specs list them.
ALL_TRACKS = (TrackType.AUDIO, TrackType.SD, TrackType.HD, TrackType.UHD1, TrackType.UHD2)


def _put(doc: dict[str, Any], name: str, value: Any) -> None:
    if value is not None:
        doc[name] = value


def policy_overrides(settings: LicenseSettings) -> dict[str, Any]:
    """``policy_overrides`` from the license settings (renewal fields only when renewal is on).

    Give the settings :func:`proxy.adapters.prepare` returns: the window
    checked and ``license_duration`` already capped by an absolute ``expiry``
    (Widevine has no absolute end date).
    """
    doc: dict[str, Any] = {}
    _put(doc, "can_play", settings.can_play)
    _put(doc, "can_persist", settings.persistent)
    _put(doc, "can_renew", settings.renewal.enabled)
    _put(doc, "license_duration_seconds", settings.license_duration)
    _put(doc, "rental_duration_seconds", settings.rental_duration)
    _put(doc, "playback_duration_seconds", settings.playback_duration)
    renewal = settings.renewal
    if renewal.enabled:
        _put(doc, "renewal_server_url", renewal.url)
        _put(doc, "renewal_delay_seconds", renewal.delay)
        _put(doc, "renewal_retry_interval_seconds", renewal.retry_interval)
        _put(doc, "renewal_recovery_duration_seconds", renewal.recovery_window)
        _put(doc, "renew_with_usage", renewal.renew_with_usage)
    return doc


def output_protection(rules: TrackRules) -> dict[str, Any]:
    """``required_output_protection`` for one track's rules."""
    doc: dict[str, Any] = {}
    _put(doc, "hdcp", rules.hdcp.value if rules.hdcp else None)
    _put(doc, "cgms_flags", rules.cgms_a.value if rules.cgms_a else None)
    _put(doc, "disable_analog_output", rules.disable_analog_output)
    return doc


def _spec(track: TrackType, rules: TrackRules) -> dict[str, Any]:
    spec: dict[str, Any] = {"track_type": track.value}
    if rules.widevine_security_level is not None:
        spec["security_level"] = int(rules.widevine_security_level)
    protection = output_protection(rules)
    if protection:
        spec["required_output_protection"] = protection
    return spec


def _has_widevine_rules(rules: TrackRules) -> bool:
    return any(
        v is not None
        for v in (
            rules.widevine_security_level,
            rules.hdcp,
            rules.cgms_a,
            rules.disable_analog_output,
        )
    )


def track_rules(policy: EffectivePolicy, track: TrackType) -> TrackRules:
    """The rules one content key spec carries: the track's, tightened by every key rule
    of a key of that track or of unknown track
    (:meth:`~proxy.policy.EffectivePolicy.rules_for_track_and_its_keys`).

    Per-key rules (from trusted claims) are folded in this way because a spec that
    names one key's id must still list every track type.
    """
    return policy.rules_for_track_and_its_keys(track)


def track_selection(
    policy: EffectivePolicy, short_forms: Iterable[str] = tuple(ALLOWED_TRACK_TYPES)
) -> dict[str, Any]:
    """``allowed_track_types`` or ``content_key_specs`` (never both; the API forbids it).

    With no track rules and an allowed set Widevine can name (audio with SD, SD+HD,
    ...; ``short_forms`` says which names the service takes) the short form is
    used. Otherwise each allowed track type (every type when the policy names none)
    gets a content key spec: Widevine leaves a track out of the license when specs
    are given and its type is missing.
    """
    allowed = set(policy.allowed_track_types) if policy.allowed_track_types else None
    tracks = [t for t in ALL_TRACKS if allowed is None or t in allowed]
    rules = {t: track_rules(policy, t) for t in tracks}
    if not any(_has_widevine_rules(r) for r in rules.values()):
        if allowed is None:
            return {}
        if TrackType.AUDIO in allowed:
            # Widevine's named sets always let audio through.
            video = allowed - {TrackType.AUDIO}
            for name in short_forms:
                if video == ALLOWED_TRACK_TYPES[name]:
                    return {"allowed_track_types": name}
    return {"content_key_specs": [_spec(t, rules[t]) for t in tracks]}
