"""Tightening the elected policy with the rules trusted claims carry (never loosening it)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from plugins.policy.claims import ClaimPolicies
from proxy import TrackRules, key_id_uuid
from proxy.policy import DEFAULT_TRACK, AppliedChange, EffectivePolicy, IgnoredChange


@dataclass(slots=True)
class Applied:
    """What tightening did: changes made and changes ignored (they would have loosened)."""

    applied: list[AppliedChange] = field(default_factory=list)
    ignored: list[IgnoredChange] = field(default_factory=list)


def apply_claim_policies(effective: EffectivePolicy, found: ClaimPolicies) -> Applied:
    """Tighten ``effective`` with the rules the claims carry.

    - the license settings, with the license claim;
    - each key a key rule names: its track's configured rules, tightened by the
      most restrictive of every key rule and track-type rule that touches it;
    - each track type a track-type rule names, with that rule;
    - every other configured track (and ``DEFAULT``), with the default rule.

    As with Verimatrix, the default rule applies only where no key or
    track-type rule does.
    """
    result = Applied()

    def record(outcome: Any) -> Any:
        result.applied.extend(outcome.applied)
        result.ignored.extend(outcome.ignored)
        return outcome.value

    if found.license is not None:
        record(effective.tighten_license(found.license))
    configured = dict(effective.tracks)

    def configured_rules(track: str | None) -> TrackRules:
        if track is not None and track in configured:
            return configured[track]
        return configured.get(DEFAULT_TRACK) or TrackRules()

    for key_id, touching in found.by_key.items():
        track = effective.key_track_types.get(key_id)
        rules = [r for _, r in touching]
        if track is not None and track in found.by_track_type:
            rules.append(found.by_track_type[track])
        merged = rules[0].most_restrictive(*rules[1:])
        base = configured_rules(track.value if track else None)
        outcome = base.tightened_by(merged, path=f"key_rules.{key_id_uuid(key_id)}.")
        effective.key_rules[key_id] = record(outcome)
    for track_type, track_rules in found.by_track_type.items():
        outcome = configured_rules(track_type.value).tightened_by(
            track_rules, path=f"tracks.{track_type.value}."
        )
        if outcome.applied:
            effective.tracks[track_type.value] = record(outcome)
        else:
            record(outcome)
    if found.default is not None:
        others = [t for t in configured if t not in {t.value for t in found.by_track_type}]
        if DEFAULT_TRACK not in others:
            others.append(DEFAULT_TRACK)
        for track_name in others:
            outcome = configured_rules(track_name).tightened_by(
                found.default, path=f"tracks.{track_name}."
            )
            if outcome.applied:
                effective.tracks[track_name] = record(outcome)
            else:
                record(outcome)
    return result
