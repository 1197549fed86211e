"""Claims that carry policy: read them, then tighten the elected policy with them.

Two vendors let a token shape the license, and a customer's STS may already
mint such tokens:

- Verimatrix: ``security_policy`` (policy id -> per-DRM rules),
  ``default_security_policy``, ``track_policy`` (key id -> policy id),
  ``track_type_policy`` (track type -> policy id), and ``policy`` (per-DRM
  license settings);
- Axinom: ``content_key_usage_policies`` (named per-DRM rules) with
  ``content_keys_source.inline[].usage_policy`` tying keys to them.

They are read only for issuers whose config trusts them, and only ever
tighten: :meth:`proxy.policy.TrackRules.tightened_by` keeps the configured value
wherever a claim would loosen it. Where several rules touch one key, the most
restrictive wins. A trusted claim that can't be read refuses the request
(fail closed): a restriction the issuer asked for is never dropped silently.

Each DRM section (``widevine``, ``playready``, ``fairplay``) applies to that
DRM's requests only; fields at the top level of a rule object, in the
proxy's own vocabulary (:class:`~proxy.policy.TrackRules`,
:class:`~proxy.policy.LicenseSettings` field names), apply to every DRM.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

from plugins.policy.settings import PolicyClaimNames
from proxy import parse_key_id, validation_errors
from proxy.model import DrmSystem
from proxy.policy import (
    LicenseSettings,
    TrackRules,
    TrackType,
)

M = TypeVar("M", bound=BaseModel)


class PolicyClaimError(ValueError):
    """A policy claim from a trusted issuer that can't be read (answered TOKEN_MALFORMED)."""


#: The section names of per-DRM objects in vendor claims.
DRM_SECTIONS: dict[str, DrmSystem] = {d.value: d for d in DrmSystem}

#: Widevine rule names (Verimatrix ``security_policy``, Axinom usage policies,
#: Widevine ``content_key_specs``) -> TrackRules fields.
WIDEVINE_RULES: dict[str, str] = {
    "security_level": "widevine_security_level",
    "device_security_level": "widevine_security_level",
    "hdcp": "hdcp",
    "cgms_flags": "cgms_a",
    "cgms-a": "cgms_a",
    "cgms_a": "cgms_a",
    "disable_analog_output": "disable_analog_output",
}

#: PlayReady rule names (Axinom usage policies) -> TrackRules fields.
PLAYREADY_RULES: dict[str, str] = {
    "min_device_security_level": "playready_min_security_level",
    "min_security_level": "playready_min_security_level",
    "security_level": "playready_min_security_level",
}

#: PlayReady output protection level names -> PlayReadyOutputProtection fields.
PLAYREADY_OPLS: dict[str, str] = {
    f"{name}_opl": name
    for name in (
        "analog_video",
        "compressed_digital_audio",
        "uncompressed_digital_audio",
        "compressed_digital_video",
        "uncompressed_digital_video",
    )
}

#: FairPlay rule names (Axinom usage policies) -> TrackRules fields.
FAIRPLAY_RULES: dict[str, str] = {
    "hdcp": "fairplay_hdcp",
    "hdcp_type": "fairplay_hdcp",
    "allow_airplay": "fairplay_allow_airplay",
    "allow_av_adapter": "fairplay_allow_av_adapter",
}

#: License setting names in vendor claims (Widevine ``policy_overrides``, Verimatrix
#: ``policy``, Axinom ``license``) -> LicenseSettings fields (``renewal.`` for nested ones).
LICENSE_NAMES: dict[str, str] = {
    "can_play": "can_play",
    "allow_playback": "can_play",
    "can_persist": "persistent",
    "can persist": "persistent",
    "allow_persistence": "persistent",
    "persistent": "persistent",
    "can_renew": "renewal.enabled",
    "allow_renewal": "renewal.enabled",
    "license_duration_seconds": "license_duration",
    "license_duration": "license_duration",
    "duration": "license_duration",
    "rental_duration_seconds": "rental_duration",
    "rental_duration": "rental_duration",
    "playback_duration_seconds": "playback_duration",
    "playback_duration": "playback_duration",
    "renewal_recovery_duration_seconds": "renewal.recovery_window",
    "renewal_recovery": "renewal.recovery_window",
    "renewal_server_url": "renewal.url",
    "renewal_url": "renewal.url",
    "renewal_delay_seconds": "renewal.delay",
    "renewal_delay": "renewal.delay",
    "renewal_retry_interval_seconds": "renewal.retry_interval",
    "renewal_retry_interval": "renewal.retry_interval",
    "renew_with_usage": "renewal.renew_with_usage",
    "start": "start",
    "expiry": "expiry",
}


def _validate(model: type[M], data: dict[str, Any], where: str) -> M:
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        path, message = validation_errors(exc, where, model)[0]
        raise PolicyClaimError(f"{path}: {message}") from None


def _object(value: Any, where: str) -> Mapping[str, Any]:
    if not isinstance(value, Mapping):
        raise PolicyClaimError(f"{where} must be an object")
    return value


def _put(target: dict[str, Any], name: str, value: Any, where: str) -> None:
    if name in target:
        raise PolicyClaimError(f"{where}: {name} is given twice")
    target[name] = value


def _drm_rules(drm: DrmSystem, section: Any, where: str) -> TrackRules:
    """One DRM section of a rule object, in that vendor's names, as TrackRules."""
    section = _object(section, where)
    fields: dict[str, Any] = {}
    opl: dict[str, Any] = {}
    for key, value in section.items():
        if drm is DrmSystem.WIDEVINE and key == "required_output_protection":
            for inner, inner_value in _object(value, f"{where}.{key}").items():
                if inner not in WIDEVINE_RULES:
                    raise PolicyClaimError(f"{where}.{key}.{inner}: unknown rule")
                _put(fields, WIDEVINE_RULES[inner], inner_value, where)
        elif drm is DrmSystem.WIDEVINE and key in WIDEVINE_RULES:
            _put(fields, WIDEVINE_RULES[key], value, where)
        elif drm is DrmSystem.PLAYREADY and key in PLAYREADY_RULES:
            _put(fields, PLAYREADY_RULES[key], value, where)
        elif drm is DrmSystem.PLAYREADY and key in PLAYREADY_OPLS:
            _put(opl, PLAYREADY_OPLS[key], value, where)
        elif drm is DrmSystem.FAIRPLAY and key in FAIRPLAY_RULES:
            _put(fields, FAIRPLAY_RULES[key], value, where)
        else:
            raise PolicyClaimError(f"{where}.{key}: unknown rule")
    if opl:
        fields["playready_output_protection"] = opl
    return _validate(TrackRules, fields, where)


def rules_from_claim(value: Any, drm: DrmSystem | None, where: str) -> TrackRules:
    """A rule object (a Verimatrix security policy, an Axinom usage policy) as TrackRules
    for one DRM: its top-level fields in our names, tightened by its section for ``drm``.

    Every section is read, so that a malformed one refuses requests of any DRM.
    """
    obj = _object(value, where)
    neutral: dict[str, Any] = {}
    sections: dict[DrmSystem, TrackRules] = {}
    for key, item in obj.items():
        if key in DRM_SECTIONS:
            sections[DRM_SECTIONS[key]] = _drm_rules(DRM_SECTIONS[key], item, f"{where}.{key}")
        else:
            neutral[key] = item
    rules = _validate(TrackRules, neutral, where)
    section = sections.get(drm) if drm is not None else None
    return rules.most_restrictive(section) if section is not None else rules


def _license_section(section: Any, where: str) -> LicenseSettings:
    fields: dict[str, Any] = {}
    renewal: dict[str, Any] = {}
    for key, value in _object(section, where).items():
        target = LICENSE_NAMES.get(key)
        if target is None:
            raise PolicyClaimError(f"{where}.{key}: unknown license setting")
        if target.startswith("renewal."):
            _put(renewal, target.removeprefix("renewal."), value, where)
        else:
            _put(fields, target, value, where)
    if renewal:
        fields["renewal"] = renewal
    return _validate(LicenseSettings, fields, where)


def license_from_claim(value: Any, drm: DrmSystem | None, where: str) -> LicenseSettings:
    """A license policy claim (Verimatrix ``policy``) as LicenseSettings for one DRM."""
    obj = _object(value, where)
    neutral: dict[str, Any] = {}
    sections: dict[DrmSystem, LicenseSettings] = {}
    for key, item in obj.items():
        if key in DRM_SECTIONS:
            sections[DRM_SECTIONS[key]] = _license_section(item, f"{where}.{key}")
        else:
            neutral[key] = item
    settings = _validate(LicenseSettings, neutral, where)
    section = sections.get(drm) if drm is not None else None
    return settings.most_restrictive(section) if section is not None else settings


def _track_type(value: Any, where: str) -> TrackType | None:
    if not isinstance(value, str):
        raise PolicyClaimError(f"{where}: a track type is a string")
    return TrackType.__members__.get(value.strip().upper())


def _key_id(value: Any, where: str) -> bytes:
    if not isinstance(value, str):
        raise PolicyClaimError(f"{where}: a key id is a string")
    try:
        return parse_key_id(value)
    except ValueError:
        raise PolicyClaimError(f"{where}: not a key id") from None


def read_key_track_types(value: Any, where: str) -> dict[bytes, TrackType]:
    """A claim mapping key ids to track types: ``{key id: "HD"}`` or
    ``[{"id": key id, "track_type": "HD"}]``."""
    pairs: list[tuple[Any, Any, str]] = []
    if isinstance(value, Mapping):
        pairs = [(k, v, f"{where}.{k}") for k, v in value.items()]
    elif isinstance(value, list):
        for i, item in enumerate(value):
            item = _object(item, f"{where}[{i}]")
            pairs.append(
                (item.get("id", item.get("key_id")), item.get("track_type"), f"{where}[{i}]")
            )
    else:
        raise PolicyClaimError(f"{where} must be an object or a list")
    types: dict[bytes, TrackType] = {}
    for kid, track, path in pairs:
        track_type = _track_type(track, path)
        if track_type is None:
            raise PolicyClaimError(f"{path}: unknown track type")
        types[_key_id(kid, path)] = track_type
    return types


def _policy_id(value: Any, where: str) -> str:
    if not isinstance(value, str) or not value.strip():
        raise PolicyClaimError(f"{where}: a security policy id is a non-empty string")
    return value.strip().lower()


@dataclass(slots=True)
class ClaimPolicies:
    """The rules a token's claims carry, read for one DRM.

    :ivar license: license settings to tighten with (Verimatrix ``policy``).
    :ivar default: rules for keys no track or track-type rule names.
    :ivar by_track_type: rules by track type.
    :ivar by_key: rules by key id, each with where it came from.
    :ivar sources: the claims that were read.
    :ivar notes: facts worth a line in the decision trace.
    """

    license: LicenseSettings | None = None
    default: TrackRules | None = None
    by_track_type: dict[TrackType, TrackRules] = field(default_factory=dict)
    by_key: dict[bytes, list[tuple[str, TrackRules]]] = field(default_factory=dict)
    sources: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def empty(self) -> bool:
        """True when the claims ask for nothing."""
        return (
            self.license is None
            and self.default is None
            and not self.by_track_type
            and not self.by_key
        )


def present_policy_claims(claims: Mapping[str, Any], names: PolicyClaimNames) -> list[str]:
    """The policy-carrying claims (by name) that the token holds."""
    return [n for n in names.model_dump().values() if n and claims.get(n) is not None]


def read_policy_claims(
    claims: Mapping[str, Any], names: PolicyClaimNames, drm: DrmSystem | None
) -> ClaimPolicies:
    """Read every policy-carrying claim of a trusted token for a request of ``drm``.

    :raises PolicyClaimError: when a claim is present but can't be read.
    """
    found = ClaimPolicies(sources=present_policy_claims(claims, names))
    _read_verimatrix(claims, names, drm, found)
    _read_axinom(claims, names, drm, found)
    if names.license_policy and claims.get(names.license_policy) is not None:
        found.license = license_from_claim(claims[names.license_policy], drm, names.license_policy)
    return found


def _read_verimatrix(
    claims: Mapping[str, Any], names: PolicyClaimNames, drm: DrmSystem | None, out: ClaimPolicies
) -> None:
    def claim(name: str) -> Any:
        return claims.get(name) if name else None

    definitions = claim(names.security_policy)
    policies: dict[str, TrackRules] = {}
    if definitions is not None:
        for pid, body in _object(definitions, names.security_policy).items():
            where = f"{names.security_policy}.{pid}"
            policies[_policy_id(pid, where)] = rules_from_claim(body, drm, where)

    def lookup(pid: Any, where: str) -> TrackRules:
        key = _policy_id(pid, where)
        if key not in policies:
            raise PolicyClaimError(
                f"{where}: security policy {pid!r} is not defined in {names.security_policy}"
            )
        return policies[key]

    default = claim(names.default_security_policy)
    if default is not None:
        out.default = lookup(default, names.default_security_policy)
    by_type = claim(names.track_type_policy)
    if by_type is not None:
        for track, pid in _object(by_type, names.track_type_policy).items():
            where = f"{names.track_type_policy}.{track}"
            track_type = _track_type(track, where)
            rules = lookup(pid, where)
            if track_type is None:
                out.notes.append(f"{where}: not a track type this proxy knows; skipped")
                continue
            out.by_track_type[track_type] = rules
    by_key = claim(names.track_policy)
    if by_key is not None:
        for kid, pid in _object(by_key, names.track_policy).items():
            where = f"{names.track_policy}.{kid}"
            out.by_key.setdefault(_key_id(kid, where), []).append(
                (f"{names.track_policy}", lookup(pid, where))
            )
    if policies and default is None and by_type is None and by_key is None:
        out.notes.append(
            f"{names.security_policy} defines policies but no claim assigns them; nothing applies"
        )


def _read_axinom(
    claims: Mapping[str, Any], names: PolicyClaimNames, drm: DrmSystem | None, out: ClaimPolicies
) -> None:
    definitions = claims.get(names.usage_policies) if names.usage_policies else None
    assignments = claims.get(names.key_usage) if names.key_usage else None
    usage: dict[str, TrackRules] = {}
    if definitions is not None:
        if not isinstance(definitions, list):
            raise PolicyClaimError(f"{names.usage_policies} must be a list")
        for i, body in enumerate(definitions):
            where = f"{names.usage_policies}[{i}]"
            body = dict(_object(body, where))
            name = body.pop("name", None)
            if not isinstance(name, str) or not name:
                raise PolicyClaimError(f"{where}.name: a usage policy needs a name")
            if name in usage:
                raise PolicyClaimError(f"{where}.name: {name!r} is defined twice")
            usage[name] = rules_from_claim(body, drm, where)
    if assignments is None:
        return
    inline = _object(assignments, names.key_usage).get("inline")
    if inline is None:
        return
    if not isinstance(inline, list):
        raise PolicyClaimError(f"{names.key_usage}.inline must be a list")
    for i, entry in enumerate(inline):
        where = f"{names.key_usage}.inline[{i}]"
        entry = _object(entry, where)
        policy_name = entry.get("usage_policy")
        if policy_name is None:
            continue
        if policy_name not in usage:
            raise PolicyClaimError(
                f"{where}.usage_policy: {policy_name!r} is not defined in {names.usage_policies}"
            )
        out.by_key.setdefault(_key_id(entry.get("id"), f"{where}.id"), []).append(
            (f"{names.usage_policies}[{policy_name}]", usage[policy_name])
        )
