"""The policy in Verimatrix's token: ``security_policy`` objects and their assignments
(seed 004), and the ``policy`` claim's license settings (names OBSERVED-3P, UNVERIFIED).

What a backend's token can carry per DRM is :func:`renderings`.
"""

from __future__ import annotations

import functools
import uuid
from typing import Any

from plugins.vendors.verimatrix.settings import VerimatrixSettings
from proxy import TRACK_FIELDS, DrmSystem, Rendering, guid
from proxy.policy import DEFAULT_TRACK, EffectivePolicy, LicenseSettings, TrackRules

VERIMATRIX_DRMS = frozenset({DrmSystem.WIDEVINE, DrmSystem.PLAYREADY, DrmSystem.FAIRPLAY})
#: The license settings the ``policy`` claim carries.
POLICY_CLAIM_FIELDS = frozenset(
    {
        "can_play",
        "persistent",
        "license_duration",
        "rental_duration",
        "playback_duration",
        "renewal.enabled",
    }
)


def _widevine_object(rules: TrackRules) -> dict[str, Any]:
    doc: dict[str, Any] = {}
    if rules.widevine_security_level is not None:
        doc["security_level"] = int(rules.widevine_security_level)
    protection: dict[str, Any] = {}
    if rules.hdcp is not None:
        protection["hdcp"] = rules.hdcp.value
    if rules.disable_analog_output is not None:
        protection["disable_analog_output"] = rules.disable_analog_output
    if rules.cgms_a is not None:
        protection["cgms_flags"] = rules.cgms_a.value
    if protection:
        doc["required_output_protection"] = protection
    return doc


def _playready_object(rules: TrackRules) -> dict[str, Any]:
    doc: dict[str, Any] = {}
    if rules.playready_min_security_level is not None:
        doc["min_security_level"] = int(rules.playready_min_security_level)
    if rules.playready_output_protection is not None:
        for name, value in rules.playready_output_protection.model_dump(exclude_none=True).items():
            doc[f"{name}_opl"] = value
    return doc


def _fairplay_object(rules: TrackRules) -> dict[str, Any]:
    doc: dict[str, Any] = {}
    if rules.fairplay_hdcp is not None:
        doc["hdcp"] = rules.fairplay_hdcp.value
    if rules.fairplay_allow_airplay is not None:
        doc["allow_airplay"] = rules.fairplay_allow_airplay
    if rules.fairplay_allow_av_adapter is not None:
        doc["allow_av_adapter"] = rules.fairplay_allow_av_adapter
    return doc


_RENDERERS = {
    DrmSystem.WIDEVINE: _widevine_object,
    DrmSystem.PLAYREADY: _playready_object,
    DrmSystem.FAIRPLAY: _fairplay_object,
}


def policy_id(policy: EffectivePolicy, scope: str) -> str:
    """A stable security policy UUID for one policy and one scope (track type or key)."""
    return _policy_uuid(policy.name, scope)


@functools.lru_cache(maxsize=1024)
def _policy_uuid(name: str, scope: str) -> str:
    # The same few policies and track types come back on every request: a name-based
    # UUID (a SHA-1) is computed once for each, within a bounded cache.
    return str(uuid.uuid5(uuid.NAMESPACE_URL, f"license-proxy:{name}:{scope}"))


def security_claims(
    policy: EffectivePolicy, drm: DrmSystem, key_ids: tuple[bytes, ...]
) -> dict[str, Any]:
    """``security_policy`` with its assignment claims for ``drm``.

    Each configured track type becomes a policy assigned in
    ``track_type_policy``; the ``DEFAULT`` rules become
    ``default_security_policy``; keys with rules of their own are assigned in
    ``track_policy``. Rules with nothing for ``drm`` are left out, and so are track
    types the policy does not allow (a security policy is no permission).
    """
    render = _RENDERERS.get(drm)
    if render is None:
        return {}
    allowed = policy.allowed_track_types
    policies: dict[str, Any] = {}
    track_types: dict[str, str] = {}
    claims: dict[str, Any] = {}
    for track, rules in policy.tracks.items():
        if allowed is not None and track != DEFAULT_TRACK and track not in allowed:
            continue
        body = render(rules)
        if not body:
            continue
        pid = policy_id(policy, track)
        policies[pid] = {drm.value: body}
        if track == DEFAULT_TRACK:
            claims["default_security_policy"] = pid
        else:
            track_types[track] = pid
    per_key: dict[str, str] = {}
    for key_id in key_ids:
        key_rules = policy.key_rules.get(key_id)
        key_body = render(key_rules) if key_rules is not None else None
        if key_body:
            pid = policy_id(policy, guid(key_id))
            policies[pid] = {drm.value: key_body}
            per_key[guid(key_id)] = pid
    if not policies:
        return {}
    claims["security_policy"] = policies
    if track_types:
        claims["track_type_policy"] = track_types
    if per_key:
        claims["track_policy"] = per_key
    return claims


def license_policy(settings: LicenseSettings, drm: DrmSystem) -> dict[str, Any]:
    """The ``policy`` claim: license settings for ``drm`` (names OBSERVED-3P, UNVERIFIED).

    :param settings: the license settings :func:`proxy.prepare`
        returned (``license_duration`` capped by an ``expiry``).
    """
    body: dict[str, Any] = {}
    for ours, theirs in (
        ("can_play", "can_play"),
        ("persistent", "can_persist"),
        ("license_duration", "license_duration"),
        ("rental_duration", "rental_duration"),
        ("playback_duration", "playback_duration"),
    ):
        value = getattr(settings, ours)
        if value is not None:
            body[theirs] = value
    if settings.renewal.enabled is not None:
        body["can_renew"] = settings.renewal.enabled
    return {drm.value: body} if body else {}


def renderings(settings: VerimatrixSettings) -> dict[DrmSystem, Rendering]:
    """What a backend's token carries per DRM: the ``policy`` claim's license settings
    (``policy_claim``), and every track rule of the DRMs in ``security_policy_drms``, per
    key too. Verimatrix licenses every key of the content id, so it never leaves keys of
    disallowed track types out."""
    found: dict[DrmSystem, Rendering] = {}
    for drm in VERIMATRIX_DRMS:
        security = drm in settings.security_policy_drms
        found[drm] = Rendering(
            license=POLICY_CLAIM_FIELDS if settings.policy_claim else frozenset(),
            tracks=frozenset(TRACK_FIELDS[drm]) if security else frozenset(),
            per_key=security,
            hints={
                "license": "turn policy_claim on (its field names are UNVERIFIED)",
                "renewal": "Verimatrix's policy claim carries can_renew only",
                "tracks": f"list {drm.value} in security_policy_drms "
                f"(Verimatrix's {drm.value} field names are UNVERIFIED)",
                "allowed_track_types": "Verimatrix licenses every key of the content id "
                "(sub); serve this policy from a backend that leaves keys out (axinom, "
                "widevine_cloud, azure with widevine_request = 'template')",
            },
        )
    return found
