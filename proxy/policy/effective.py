"""The policy that applies to one request: the elected policy after any tightening."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from proxy.drm import DrmSystem, key_id_uuid
from proxy.policy.model import LicenseSettings, Policy, TrackRules
from proxy.policy.strictness import Tightened
from proxy.policy.vocabulary import DEFAULT_TRACK, TrackType


@dataclass(slots=True)
class EffectivePolicy:
    """The policy that applies to one request, after any tightening.

    :ivar name: the elected policy's name.
    :ivar policy: the configured policy it came from.
    :ivar license: the license settings to enforce (the request's DRM override applied).
    :ivar tracks: track rules by track type (and ``DEFAULT``).
    :ivar key_track_types: the track type of each requested key id, where known.
    :ivar key_rules: per-key rules where something touched one key alone
        (most restrictive already applied); otherwise the track's rules apply.
    :ivar drm_system: the DRM the license is for, when known at election.
    """

    name: str
    policy: Policy
    license: LicenseSettings
    tracks: dict[str, TrackRules]
    allowed_track_types: tuple[TrackType, ...] | None = None
    backends: tuple[str, ...] = ()
    key_track_types: dict[bytes, TrackType] = field(default_factory=dict)
    key_rules: dict[bytes, TrackRules] = field(default_factory=dict)
    drm_system: DrmSystem | None = None

    @classmethod
    def from_policy(
        cls,
        policy: Policy,
        key_track_types: Mapping[bytes, TrackType] | Iterable[bytes] | None = None,
        drm_system: DrmSystem | None = None,
    ) -> EffectivePolicy:
        """The policy as configured, untightened.

        :param key_track_types: key id -> track type; a plain list of key ids
            (types unknown) is accepted and records nothing.
        :param drm_system: the request's DRM, to apply its ``license_overrides``.
        """
        known = dict(key_track_types) if isinstance(key_track_types, Mapping) else {}
        return cls(
            name=policy.name,
            policy=policy,
            license=policy.license_for(drm_system),
            tracks=dict(policy.tracks),
            allowed_track_types=(
                tuple(policy.allowed_track_types) if policy.allowed_track_types else None
            ),
            backends=tuple(policy.backends),
            key_track_types=known,
            drm_system=drm_system,
        )

    def rules_for_track(self, track: TrackType | str | None) -> TrackRules:
        """The rules for a track type, else the ``DEFAULT`` rules, else no rules."""
        if track is not None and str(track) in self.tracks:
            return self.tracks[str(track)]
        return self.tracks.get(DEFAULT_TRACK) or TrackRules()

    def rules_for_track_and_its_keys(self, track: TrackType | str) -> TrackRules:
        """The track's rules tightened by every key rule of a key of that track, or of a key
        whose track is unknown (it may be any): what one rule set covering the whole track
        must carry. Stricter for the track's other keys, never looser for any key."""
        rules = self.rules_for_track(track)
        touching = [
            key_rules
            for key_id, key_rules in self.key_rules.items()
            if self.key_track_types.get(key_id) in (track, None)
        ]
        return rules.most_restrictive(*touching) if touching else rules

    def rules_for_key(self, key_id: bytes) -> TrackRules:
        """The rules that apply to one key id."""
        if key_id in self.key_rules:
            return self.key_rules[key_id]
        return self.rules_for_track(self.key_track_types.get(key_id))

    def tighten_license(self, claim: LicenseSettings) -> Tightened[LicenseSettings]:
        """Apply a license change that may only restrict; return what was applied and ignored."""
        result = self.license.tightened_by(claim)
        self.license = result.value
        return result

    def tighten_track(self, track: TrackType | str, claim: TrackRules) -> Tightened[TrackRules]:
        """Tighten the rules of one track type (``DEFAULT`` included) with ``claim``."""
        result = self.rules_for_track(track).tightened_by(claim, path=f"tracks.{track}.")
        if result.applied:
            self.tracks[str(track)] = result.value
        return result

    def tighten_key(self, key_id: bytes, claim: TrackRules) -> Tightened[TrackRules]:
        """Tighten the rules of one key with ``claim`` (recorded in ``key_rules``)."""
        result = self.rules_for_key(key_id).tightened_by(
            claim, path=f"key_rules.{key_id_uuid(key_id)}."
        )
        if result.applied:
            self.key_rules[key_id] = result.value
        return result

    def to_dict(self) -> dict[str, Any]:
        """A JSON-safe view, for dry runs and ``license-proxy explain``."""
        view = {
            "name": self.name,
            "license": self.license.model_dump(mode="json", exclude_none=True),
            "allowed_track_types": [t.value for t in self.allowed_track_types or ()],
            "tracks": {
                k: v.model_dump(mode="json", exclude_none=True) for k, v in self.tracks.items()
            },
            "backends": list(self.backends),
            "key_track_types": {key_id_uuid(k): v.value for k, v in self.key_track_types.items()},
            "key_rules": {
                key_id_uuid(k): v.model_dump(mode="json", exclude_none=True)
                for k, v in self.key_rules.items()
            },
        }
        if self.drm_system is not None:
            view["drm_system"] = self.drm_system.value
        return view
