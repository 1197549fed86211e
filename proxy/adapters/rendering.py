"""What an adapter renders in its vendor request, and which rules of a policy it leaves out.

An adapter declares, per DRM, a :class:`Rendering` (``VendorSpec.renderings``): the
license settings and track rules it renders, whether it can leave keys of
disallowed track types out, whether per-key rules reach the vendor, and who else
(if anyone) enforces what it can't render. A DRM it declares nothing for renders
nothing (:func:`renders_nothing`): every restricting rule is then refused, unless
the backend says its vendor account enforces the policy
(``policy_enforced_by_vendor``). From that declaration:

- at start, :func:`config_gaps` lists the rules of a configured policy the backend
  can't render (the core turns them into config errors or warnings,
  :func:`proxy.vendors.check_policies`);
- per request, :func:`request_gaps` lists the restricting rules of the request's
  policy it can't carry (:func:`proxy.adapters.prepare` refuses them).

Some rules are the proxy's own and always count as rendered: ``start`` (no
license is issued before it), ``expiry`` when the adapter renders a license
duration (capped by the time left), and ``can_play = false`` (refused when the
vendor has no field for it). Renewal rules are judged for Widevine only, the one
DRM whose licenses renew themselves (heartbeat); elsewhere a license that is
not renewed is never looser.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from pydantic import BaseModel

from proxy.drm import DrmSystem, key_id_uuid
from proxy.policy import (
    DEFAULT_TRACK,
    RESTRICTION,
    STRICTNESS,
    EffectivePolicy,
    LicenseSettings,
    Policy,
    RenewalSettings,
    TrackRules,
    TrackType,
)

#: The track rules that speak to each DRM.
TRACK_FIELDS: dict[DrmSystem, tuple[str, ...]] = {
    DrmSystem.WIDEVINE: ("widevine_security_level", "hdcp", "cgms_a", "disable_analog_output"),
    DrmSystem.PLAYREADY: ("playready_min_security_level", "playready_output_protection"),
    DrmSystem.FAIRPLAY: ("fairplay_hdcp", "fairplay_allow_airplay", "fairplay_allow_av_adapter"),
    DrmSystem.CLEARKEY: (),
}
#: License settings an adapter may render (``start`` and ``can_play`` are the proxy's own).
LICENSE_FIELDS = (
    "persistent",
    "license_duration",
    "rental_duration",
    "playback_duration",
    "expiry",
)
RENEWAL_FIELDS = tuple(f"renewal.{name}" for name in RenewalSettings.model_fields)
#: DRMs whose licenses renew themselves, so that renewal rules mean something.
RENEWING_DRMS = frozenset({DrmSystem.WIDEVINE})

Kind = Literal["license", "renewal", "tracks", "allowed_track_types"]


@dataclass(frozen=True, slots=True)
class Rendering:
    """What one adapter renders for one DRM.

    :ivar license: names from :data:`LICENSE_FIELDS`, :data:`RENEWAL_FIELDS` and
        ``can_play``, rendered in the vendor request.
    :ivar tracks: names from :data:`TRACK_FIELDS` rendered per track type; a vendor that
        carries part of a composite rule names the parts
        (``playready_output_protection.analog_video``), and the parts it leaves out are
        judged one by one.
    :ivar track_types: the track types whose rules reach the vendor (None: every type).
        Rules of another type, and ``DEFAULT`` rules that would apply to one, are not
        rendered (a vendor that labels its keys by a few quality classes).
    :ivar allowed_track_types: keys of track types the policy does not allow are
        left out of the license.
    :ivar per_key: a key's own rules reach the vendor (natively, or folded into
        its track's rules).
    :ivar enforced_by: who enforces what is not rendered: ``"nobody"`` (an
        unrendered restriction is a config error), ``"vendor"`` (the vendor
        account's own configuration: the configured values are accepted silently,
        rules a claim tightens are refused) or ``"nothing_can"`` (the DRM has no
        means: configured rules are warned about, rules a claim tightens refused).
    :ivar hints: what to do about an unrendered rule, by kind (``license``,
        ``renewal``, ``tracks``, ``allowed_track_types``).
    """

    license: frozenset[str] = frozenset()
    tracks: frozenset[str] = frozenset()
    track_types: frozenset[str] | None = None
    allowed_track_types: bool = False
    per_key: bool = False
    enforced_by: Literal["nobody", "vendor", "nothing_can"] = "nobody"
    hints: Mapping[str, str] = field(default_factory=dict)

    def renders_license(self, name: str) -> bool:
        """True when the license setting ``name`` reaches the vendor or the proxy enforces it."""
        if name in self.license or name in ("start", "can_play"):
            return True
        return name == "expiry" and "license_duration" in self.license

    def hint(self, kind: Kind | Literal["default"]) -> str:
        """What to do about an unrendered rule of ``kind``."""
        return self.hints.get(kind) or self.hints.get("default", "")


@dataclass(frozen=True, slots=True)
class PolicyGap:
    """A rule of a policy that a backend's adapter can't put in its vendor request.

    :ivar field: the rule's path in the policy (``tracks.HD.playready_min_security_level``).
    :ivar drm: the DRM it can't be rendered for.
    :ivar error: True when leaving it out would make the license looser than the
        policy (a start-up error); False when nothing is loosened (a warning).
    :ivar why: what the operator can do about it, or why it is harmless.
    """

    field: str
    drm: DrmSystem
    error: bool
    why: str


def renders_nothing(vendor: str, drm: DrmSystem) -> Rendering:
    """The rendering of a DRM an adapter declares nothing for: no rule reaches the vendor."""
    return Rendering(
        hints={
            "default": f"the {vendor} adapter declares no rendering for {drm.value}, so no "
            "rule reaches the vendor; set policy_enforced_by_vendor on the backend when "
            "the vendor account enforces the policy"
        }
    )


# -- which rules restrict ------------------------------------------------------------


def restricts(model: type[BaseModel], name: str, value: Any) -> bool:
    """True when ``value`` of field ``name`` restricts more than leaving it unset does.

    ``can_play = true``, ``persistent = true`` or ``disable_analog_output = false``
    restrict nothing; a level, an HDCP version or a limited duration do; fields that
    are no restriction at all (``renewal.delay``) never do.
    """
    if value is None:
        return False
    if isinstance(value, BaseModel):
        return any(restricts(type(value), n, getattr(value, n)) for n in type(value).model_fields)
    order = STRICTNESS.get(model, {}).get(name)
    if order is None or order.rank is None:
        return False
    if order is RESTRICTION:
        return value is True
    return order.rank(value) > order.rank(None)


def _license_value(settings: LicenseSettings, name: str) -> Any:
    if name.startswith("renewal."):
        return getattr(settings.renewal, name[8:])
    return getattr(settings, name)


def _license_restricts(name: str, value: Any) -> bool:
    if name.startswith("renewal."):
        return restricts(RenewalSettings, name[8:], value)
    return restricts(LicenseSettings, name, value)


def _license_rules(settings: LicenseSettings, drm: DrmSystem) -> Iterator[tuple[str, Any]]:
    """The license rules that are set and worth judging for ``drm``."""
    for name in LICENSE_FIELDS:
        value = getattr(settings, name)
        if value is not None:
            yield name, value
    if drm in RENEWING_DRMS:
        renewal = settings.renewal
        for name in RENEWAL_FIELDS:
            value = _license_value(settings, name)
            if value is None:
                continue
            if name != "renewal.enabled" and renewal.enabled is False:
                continue  # no renewal happens, so its details don't matter
            yield name, value


def _kind(name: str) -> Kind:
    return "renewal" if name.startswith("renewal.") else "license"


# -- track rules, atom by atom -------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Atom:
    """One rule as the rendering judges it: a whole track rule, or one part of a
    composite rule the rendering carries in part."""

    path: str
    value: Any
    restricts: bool
    rendered: bool


def _atoms(name: str, value: Any, rendering: Rendering) -> list[_Atom]:
    """The atoms of track rule ``name`` set to ``value`` (none when it is unset)."""
    if value is None:
        return []
    prefix = name + "."
    in_part = any(t.startswith(prefix) for t in rendering.tracks)
    if isinstance(value, BaseModel) and name not in rendering.tracks and in_part:
        model = type(value)
        return [
            _Atom(
                prefix + part,
                getattr(value, part),
                restricts(model, part, getattr(value, part)),
                prefix + part in rendering.tracks,
            )
            for part in model.model_fields
            if getattr(value, part) is not None
        ]
    return [_Atom(name, value, restricts(TrackRules, name, value), name in rendering.tracks)]


def _part(rules: TrackRules, path: str) -> Any:
    """The value at ``path`` (``hdcp``, ``playready_output_protection.analog_video``)."""
    value: Any = rules
    for name in path.split("."):
        value = getattr(value, name, None) if value is not None else None
    return value


def _uncovered_types(rendering: Rendering, allowed: Iterable[TrackType] | None) -> set[str]:
    """Track types whose rules can't reach the vendor and whose keys it licenses."""
    if rendering.track_types is None:
        return set()
    types = {t.value for t in TrackType} - set(rendering.track_types)
    if allowed is not None and rendering.allowed_track_types:
        types &= {t.value for t in allowed}  # keys of the others are left out anyway
    return types


def _covers(track: str, uncovered: set[str], tracks: Mapping[str, Any]) -> bool:
    """True when the rules under ``tracks.<track>`` reach the vendor for every key they
    apply to (``DEFAULT`` applies to each type with no rules of its own)."""
    if track == DEFAULT_TRACK:
        return not any(t not in tracks for t in uncovered)
    return track not in uncovered


# -- at start --------------------------------------------------------------------------


def config_gaps(policy: Policy, drm: DrmSystem, rendering: Rendering) -> list[PolicyGap]:
    """The rules of ``policy`` that ``rendering`` leaves out for ``drm``, as config findings."""
    if rendering.enforced_by == "vendor":
        return []
    gaps: list[PolicyGap] = []

    def add(path: str, restrictive: bool, kind: Kind) -> None:
        if rendering.enforced_by == "nothing_can":
            gaps.append(PolicyGap(path, drm, False, rendering.hint("default")))
        elif restrictive:
            gaps.append(PolicyGap(path, drm, True, rendering.hint(kind)))
        else:
            gaps.append(PolicyGap(path, drm, False, "the vendor's default applies"))

    settings = policy.license_for(drm)
    override = policy.license_overrides.get(drm)
    for name, value in _license_rules(settings, drm):
        if rendering.renders_license(name):
            continue
        overridden = override is not None and _license_value(override, name) is not None
        prefix = f"license_overrides.{drm.value}" if overridden else "license"
        add(f"{prefix}.{name}", _license_restricts(name, value), _kind(name))
    uncovered = _uncovered_types(rendering, policy.allowed_track_types)
    for track, rules in policy.tracks.items():
        covered = _covers(track, uncovered, policy.tracks)
        for name in TRACK_FIELDS[drm]:
            for atom in _atoms(name, getattr(rules, name), rendering):
                if not (atom.rendered and covered):
                    add(f"tracks.{track}.{atom.path}", atom.restricts, "tracks")
    if policy.allowed_track_types is not None and not rendering.allowed_track_types:
        add("allowed_track_types", True, "allowed_track_types")
    return gaps


# -- per request -----------------------------------------------------------------------


def _configured_track(policy: Policy, track: str | None) -> TrackRules:
    if track is not None and track in policy.tracks:
        return policy.tracks[track]
    return policy.tracks.get(DEFAULT_TRACK) or TrackRules()


def request_gaps(effective: EffectivePolicy, drm: DrmSystem, rendering: Rendering) -> list[str]:
    """The restricting rules of a request's policy that ``rendering`` can't carry for ``drm``.

    A rule left out at start (the vendor enforces it, or nothing can) passes while it
    is the configured value; one a trusted claim tightened can't reach the vendor's
    own configuration, so it is listed.
    """
    configured = effective.policy
    accepted = rendering.enforced_by != "nobody"
    found: list[str] = []
    base = configured.license_for(drm)
    for name, value in _license_rules(effective.license, drm):
        if rendering.renders_license(name) or not _license_restricts(name, value):
            continue
        if accepted and _license_value(base, name) == value:
            continue
        found.append(f"license.{name}")
    fields = TRACK_FIELDS[drm]
    uncovered = _uncovered_types(rendering, effective.allowed_track_types)
    for track, rules in effective.tracks.items():
        covered = _covers(track, uncovered, effective.tracks)
        for name in fields:
            for atom in _atoms(name, getattr(rules, name), rendering):
                if (atom.rendered and covered) or not atom.restricts:
                    continue
                if (
                    accepted
                    and _part(_configured_track(configured, track), atom.path) == atom.value
                ):
                    continue
                found.append(f"tracks.{track}.{atom.path}")
    for key_id, rules in effective.key_rules.items():
        key_track = effective.key_track_types.get(key_id)
        shared = effective.rules_for_track(key_track)
        covered = rendering.track_types is None or (
            key_track is not None and key_track in rendering.track_types
        )
        for name in fields:
            for atom in _atoms(name, getattr(rules, name), rendering):
                if not atom.restricts:
                    continue
                if (
                    atom.rendered
                    and covered
                    and (rendering.per_key or _part(shared, atom.path) == atom.value)
                ):
                    continue
                configured_rules = _configured_track(configured, key_track)
                if accepted and _part(configured_rules, atom.path) == atom.value:
                    continue
                found.append(f"key_rules.{key_id_uuid(key_id)}.{atom.path}")
    allowed = effective.allowed_track_types
    if allowed is not None and not rendering.allowed_track_types:
        configured_allowed = configured.allowed_track_types
        if not (
            accepted and configured_allowed is not None and set(configured_allowed) == set(allowed)
        ):
            found.append("allowed_track_types")
    return found
