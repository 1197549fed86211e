"""The vendor-neutral policy: one vocabulary for license rules that every adapter renders.

A ``[[policies]]`` entry is a :class:`Policy`; the policy plugin elects one per
request and hands the pipeline an :class:`EffectivePolicy`: the policy after
any tightening, with each requested key id tied to its track type. Every field
is optional and ``None`` means "the vendor's default": the model never turns
"unset" into ``False`` or ``0``.

Tightening lives here too, so that adapters and plugins share one notion of
"stricter": :meth:`TrackRules.tightened_by` and :meth:`LicenseSettings.tightened_by`
apply a rule set that may only restrict (a claim from a trusted issuer) and
report what they ignored; :meth:`TrackRules.most_restrictive` merges rule sets
that all apply to one key. :data:`STRICTNESS` says, field by field, which
values are stricter.
"""

from __future__ import annotations

import contextlib
import ipaddress
import math
import uuid
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from enum import Enum, IntEnum, StrEnum
from typing import Any, Generic, TypeVar

from pydantic import BaseModel, Field, field_validator, model_validator

from proxy.config import Seconds, StrictModel
from proxy.encoding import parse_key_id
from proxy.model import DrmSystem, key_id_uuid


class TrackType(StrEnum):
    """Track types as Widevine, Verimatrix and Axinom name them."""

    AUDIO = "AUDIO"
    SD = "SD"
    HD = "HD"
    UHD1 = "UHD1"
    UHD2 = "UHD2"


#: The ``tracks`` key whose rules apply to keys of no known track type.
DEFAULT_TRACK = "DEFAULT"


class WidevineSecurityLevel(IntEnum):
    """Widevine robustness levels 1-5 (``content_key_specs.security_level``)."""

    SW_SECURE_CRYPTO = 1
    SW_SECURE_DECODE = 2
    HW_SECURE_CRYPTO = 3
    HW_SECURE_DECODE = 4
    HW_SECURE_ALL = 5


class RankedEnum(StrEnum):
    """A string enum whose members are declared weakest first."""

    @property
    def rank(self) -> int:
        """Higher is stricter (the member's place in the declaration)."""
        return type(self)._member_names_.index(self.name)


class Hdcp(RankedEnum):
    """Required HDCP version on digital outputs, weakest first."""

    NONE = "HDCP_NONE"
    V1 = "HDCP_V1"
    V2 = "HDCP_V2"
    V2_1 = "HDCP_V2_1"
    V2_2 = "HDCP_V2_2"
    V2_3 = "HDCP_V2_3"
    NO_DIGITAL_OUTPUT = "HDCP_NO_DIGITAL_OUTPUT"


class CgmsA(RankedEnum):
    """CGMS-A copy control on analog outputs, weakest first."""

    COPY_FREE = "COPY_FREE"
    COPY_ONCE = "COPY_ONCE"
    COPY_NEVER = "COPY_NEVER"


class PlayReadySecurityLevel(IntEnum):
    """PlayReady minimum client security level."""

    SL150 = 150
    SL2000 = 2000
    SL3000 = 3000


class FairPlayHdcp(RankedEnum):
    """FairPlay HDCP enforcement, weakest first (Axinom's names)."""

    NONE = "NONE"
    TYPE0 = "TYPE0"
    TYPE1 = "TYPE1"
    TYPE1_STRICT = "TYPE1_STRICT"


class PlayReadyOutputProtection(StrictModel):
    """PlayReady output protection levels (OPLs); higher is stricter."""

    analog_video: int | None = Field(default=None, ge=100, le=500)
    compressed_digital_audio: int | None = Field(default=None, ge=100, le=500)
    uncompressed_digital_audio: int | None = Field(default=None, ge=100, le=500)
    compressed_digital_video: int | None = Field(default=None, ge=100, le=500)
    uncompressed_digital_video: int | None = Field(default=None, ge=100, le=500)


class TrackRules(StrictModel):
    """Output and robustness rules for the keys of one track type."""

    widevine_security_level: WidevineSecurityLevel | None = None
    hdcp: Hdcp | None = None
    cgms_a: CgmsA | None = None
    disable_analog_output: bool | None = None
    playready_min_security_level: PlayReadySecurityLevel | None = None
    playready_output_protection: PlayReadyOutputProtection | None = None
    fairplay_hdcp: FairPlayHdcp | None = None
    fairplay_allow_airplay: bool | None = None
    fairplay_allow_av_adapter: bool | None = None

    @field_validator("widevine_security_level", mode="before")
    @classmethod
    def _level_by_name(cls, value: Any) -> Any:
        if isinstance(value, str) and value in WidevineSecurityLevel.__members__:
            return WidevineSecurityLevel[value]
        return value

    @field_validator("hdcp", mode="before")
    @classmethod
    def _hdcp_short_names(cls, value: Any) -> Any:
        if isinstance(value, str):
            value = value.strip().upper().replace(".", "_")
            if not value.startswith("HDCP_"):
                return f"HDCP_{value}"
        return value

    @field_validator("cgms_a", mode="before")
    @classmethod
    def _cgms_short_names(cls, value: Any) -> Any:
        # Axinom writes "never"; Widevine and Verimatrix write "COPY_NEVER".
        if isinstance(value, str):
            value = value.strip().upper().replace("-", "_")
            if not value.startswith("COPY_"):
                return f"COPY_{value}"
        return value

    @field_validator("playready_min_security_level", mode="before")
    @classmethod
    def _level_as_text(cls, value: Any) -> Any:
        # Axinom writes the level as a string ("3000").
        if isinstance(value, str) and value.strip().isdigit():
            return int(value)
        return value

    @field_validator("fairplay_hdcp", mode="before")
    @classmethod
    def _fairplay_hdcp_case(cls, value: Any) -> Any:
        return value.strip().upper() if isinstance(value, str) else value

    def most_restrictive(self, *others: TrackRules) -> TrackRules:
        """These rules merged with ``others``, field by field the strictest value.

        For rule sets that all apply to one key (a track-type rule and a key
        rule, two claims naming the key): unset fields take the other side's
        value, set fields the stricter of the two.
        """
        merged = self
        for other in others:
            merged = _merge(merged, other)
        return merged

    def tightened_by(self, claim: TrackRules, *, path: str = "") -> Tightened[TrackRules]:
        """These rules after a change that may only make them stricter.

        Every field the claim sets is applied when it is stricter than the
        current value and ignored otherwise (reported in ``ignored``); a field
        left unset counts as the weakest value for a restriction, and a claim
        can't grant a permission (``fairplay_allow_airplay = true``) that the
        policy left unset.
        """
        return _tightened(self, claim, path)

    @property
    def is_empty(self) -> bool:
        """True when no rule is set (every value is the vendor's default)."""
        return self == TrackRules()


class RenewalSettings(StrictModel):
    """License renewal (heartbeat) settings."""

    enabled: bool | None = None
    delay: Seconds | None = None
    """Seconds after the license starts before the first renewal."""
    retry_interval: Seconds | None = None
    recovery_window: Seconds | None = None
    """How long playback may go on while renewals fail."""
    url: str | None = None
    renew_with_usage: bool | None = None

    @field_validator("url")
    @classmethod
    def _http_url(cls, url: str | None) -> str | None:
        if url is not None and not url.startswith(("https://", "http://")):
            raise ValueError("the renewal URL must be an http:// or https:// URL")
        return url


class LicenseSettings(StrictModel):
    """What the license lets the player do, and for how long (0 = unlimited)."""

    can_play: bool | None = None
    persistent: bool | None = None
    license_duration: Seconds | None = None
    rental_duration: Seconds | None = None
    playback_duration: Seconds | None = None
    start: datetime | None = None
    """The license is not valid before this instant."""
    expiry: datetime | None = None
    """The license is not valid after this instant."""
    renewal: RenewalSettings = RenewalSettings()

    @field_validator("start", "expiry")
    @classmethod
    def _aware(cls, instant: datetime | None) -> datetime | None:
        if instant is not None and instant.utcoffset() is None:
            raise ValueError("give the instant with its UTC offset, e.g. 2030-01-31T00:00:00Z")
        return instant

    @model_validator(mode="after")
    def _window(self) -> LicenseSettings:
        if self.start is not None and self.expiry is not None and self.start >= self.expiry:
            raise ValueError("start must come before expiry")
        return self

    def overlaid_with(self, override: LicenseSettings) -> LicenseSettings:
        """These settings with every field ``override`` sets replacing ours (renewal too).

        Used for a policy's per-DRM ``license_overrides``, which the operator
        wrote and which may therefore loosen as well as tighten.
        """
        updates: dict[str, Any] = {
            name: getattr(override, name)
            for name in type(self).model_fields
            if name != "renewal" and getattr(override, name) is not None
        }
        renewal = {
            name: getattr(override.renewal, name)
            for name in RenewalSettings.model_fields
            if getattr(override.renewal, name) is not None
        }
        if renewal:
            updates["renewal"] = self.renewal.model_copy(update=renewal)
        return self.model_copy(update=updates) if updates else self

    def most_restrictive(self, *others: LicenseSettings) -> LicenseSettings:
        """These settings merged with ``others``, field by field the strictest value."""
        merged = self
        for other in others:
            merged = _merge(merged, other)
        return merged

    def tightened_by(
        self, claim: LicenseSettings, *, path: str = "license."
    ) -> Tightened[LicenseSettings]:
        """These settings after a change that may only make them stricter.

        Shorter durations (0 is unlimited), a later start, an earlier expiry,
        a shorter renewal recovery window and turning ``can_play``,
        ``persistent`` or renewal off are applied; anything else a claim sets
        is ignored and reported. The renewal URL, delay and retry interval are
        not restrictions: a claim can't change them.
        """
        return _tightened(self, claim, path)


#: A required claim: a value, a list of accepted values, or ``{present = true}``.
ClaimCondition = str | int | float | bool | list[str | int | float | bool] | dict[str, bool]


class PolicyMatch(StrictModel):
    """Conditions that must all hold for a policy to be a candidate."""

    claims: dict[str, ClaimCondition] = Field(default_factory=dict)
    drm_systems: list[DrmSystem] | None = None
    content_ids: list[str] | None = None
    """Glob patterns (``movies/*``) the content id must match."""
    key_ids: list[uuid.UUID] | None = None
    """Every key id the request asks for must be one of these."""

    @field_validator("claims", mode="before")
    @classmethod
    def _presence_form(cls, claims: Any) -> Any:
        if not isinstance(claims, dict):
            return claims
        for name, condition in claims.items():
            if isinstance(condition, dict) and (
                set(condition) != {"present"} or not isinstance(condition["present"], bool)
            ):
                raise ValueError(
                    f"claim {name!r}: a table condition must be {{present = true}} or "
                    "{present = false}"
                )
        return claims

    @field_validator("key_ids", mode="before")
    @classmethod
    def _key_id_forms(cls, key_ids: Any) -> Any:
        # Besides UUIDs, accept the key id forms the rest of the config takes (hex, base64).
        if not isinstance(key_ids, list):
            return key_ids
        converted = []
        for key_id in key_ids:
            if isinstance(key_id, str):
                with contextlib.suppress(ValueError):
                    key_id = uuid.UUID(bytes=parse_key_id(key_id))
            converted.append(key_id)
        return converted

    @property
    def specificity(self) -> int:
        """How many conditions this match states: each required claim counts one, and so
        do a DRM list, a content pattern list and a key id list. The election prefers
        the more specific of two candidates of equal priority."""
        return (
            len(self.claims)
            + (self.drm_systems is not None)
            + (self.content_ids is not None)
            + (self.key_ids is not None)
        )


class PolicyAccess(StrictModel):
    """Access rules a policy adds to the global ``[access]`` rules."""

    ip_allow: list[ipaddress.IPv4Network | ipaddress.IPv6Network] = Field(default_factory=list)
    ip_deny: list[ipaddress.IPv4Network | ipaddress.IPv6Network] = Field(default_factory=list)
    require_device_id: bool = False


class Policy(StrictModel):
    """A ``[[policies]]`` entry: when it applies, what the license allows, who serves it."""

    name: str = Field(pattern=r"^[A-Za-z0-9_.:-]+$")
    description: str = ""
    priority: int = 0
    match: PolicyMatch = PolicyMatch()
    license: LicenseSettings = LicenseSettings()
    allowed_track_types: list[TrackType] | None = None
    tracks: dict[TrackType | str, TrackRules] = Field(default_factory=dict)
    backends: list[str] = Field(default_factory=list)
    access: PolicyAccess = PolicyAccess()
    license_overrides: dict[DrmSystem, LicenseSettings] = Field(default_factory=dict)
    """Per-DRM license settings that replace ``license``'s for that DRM (Axinom's
    PlayReady-, FairPlay- and Widevine-specific duration and persistence)."""

    def license_for(self, drm_system: DrmSystem | None) -> LicenseSettings:
        """The license settings for a DRM: ``license`` with that DRM's override laid over it."""
        override = self.license_overrides.get(drm_system) if drm_system is not None else None
        return self.license.overlaid_with(override) if override is not None else self.license

    @model_validator(mode="before")
    @classmethod
    def _backend_shorthand(cls, data: Any) -> Any:
        if isinstance(data, dict) and "backend" in data:
            data = dict(data)
            backend = data.pop("backend")
            if "backends" in data:
                raise ValueError("give either backend or backends, not both")
            data["backends"] = [backend]
        return data

    @field_validator("tracks")
    @classmethod
    def _track_keys(cls, tracks: dict[Any, TrackRules]) -> dict[str, TrackRules]:
        allowed = {t.value for t in TrackType} | {DEFAULT_TRACK}
        for key in tracks:
            if str(key) not in allowed:
                raise ValueError(
                    f"unknown track type {key!r} (one of {', '.join(sorted(allowed))})"
                )
        return {str(k): v for k, v in tracks.items()}

    @model_validator(mode="after")
    def _overrides_keep_the_window(self) -> Policy:
        for drm in self.license_overrides:
            start, expiry = self.license_for(drm).start, self.license_for(drm).expiry
            if start is not None and expiry is not None and start >= expiry:
                raise ValueError(f"license_overrides.{drm.value}: start must come before expiry")
        return self


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


# -- strictness ------------------------------------------------------------------------

M = TypeVar("M", bound=BaseModel)

_WEAKEST = -math.inf


#: Each ordered enum's members by rank (weakest first), looked up rather than recomputed.
_ENUM_RANKS: dict[type, dict[Any, int]] = {
    enum: {member: rank for rank, member in enumerate(enum)} for enum in (Hdcp, CgmsA, FairPlayHdcp)
}


def _ranked(value: Any) -> float:
    if value is None:
        return _WEAKEST
    ranks = _ENUM_RANKS.get(type(value))
    return ranks[value] if ranks is not None else value.rank


def _level(value: Any) -> float:
    return _WEAKEST if value is None else int(value)


def _restriction(value: Any) -> float:
    return _WEAKEST if value is None else int(bool(value))


def _permission(value: Any) -> float:
    # False is the strict value; unset can't be told from "allowed", so a claim grants nothing.
    return 1 if value is False else 0


def _duration(value: Any) -> float:
    # 0 means unlimited, like unset; otherwise shorter is stricter.
    return _WEAKEST if not value else -value


def _earlier(value: Any) -> float:
    return _WEAKEST if value is None else -value.timestamp()


def _later(value: Any) -> float:
    return _WEAKEST if value is None else value.timestamp()


@dataclass(frozen=True, slots=True)
class Strictness:
    """How the values of one field compare.

    :ivar rank: maps a value (None included) to a number that is higher for
        stricter values; None when the field is not a restriction at all and a
        claim may not change it.
    :ivar kind: a word for docs and traces (``level``, ``permission``, ``duration``...).
    """

    rank: Callable[[Any], float] | None
    kind: str


LEVEL = Strictness(_level, "level")
RANKED = Strictness(_ranked, "level")
RESTRICTION = Strictness(_restriction, "restriction")
PERMISSION = Strictness(_permission, "permission")
DURATION = Strictness(_duration, "duration")
EARLIER = Strictness(_earlier, "deadline")
LATER = Strictness(_later, "start")
FIXED = Strictness(None, "fixed")

#: Field by field, which values are stricter. A field missing here is treated as
#: FIXED (a claim can't change it), so a field added later is never loosened by accident.
STRICTNESS: dict[type[BaseModel], dict[str, Strictness]] = {
    TrackRules: {
        "widevine_security_level": LEVEL,
        "hdcp": RANKED,
        "cgms_a": RANKED,
        "disable_analog_output": RESTRICTION,
        "playready_min_security_level": LEVEL,
        "fairplay_hdcp": RANKED,
        "fairplay_allow_airplay": PERMISSION,
        "fairplay_allow_av_adapter": PERMISSION,
    },
    PlayReadyOutputProtection: {
        "analog_video": LEVEL,
        "compressed_digital_audio": LEVEL,
        "uncompressed_digital_audio": LEVEL,
        "compressed_digital_video": LEVEL,
        "uncompressed_digital_video": LEVEL,
    },
    LicenseSettings: {
        "can_play": PERMISSION,
        "persistent": PERMISSION,
        "license_duration": DURATION,
        "rental_duration": DURATION,
        "playback_duration": DURATION,
        "start": LATER,
        "expiry": EARLIER,
    },
    RenewalSettings: {
        "enabled": PERMISSION,
        "delay": FIXED,
        "retry_interval": FIXED,
        "recovery_window": DURATION,
        "url": FIXED,
        "renew_with_usage": RESTRICTION,
    },
}


def _show(value: Any) -> str:
    if value is None:
        return "unset"
    if isinstance(value, Enum):
        return str(value.name if isinstance(value, IntEnum) else value.value)
    if isinstance(value, datetime):
        return value.isoformat()
    return repr(value)


@dataclass(frozen=True, slots=True)
class IgnoredChange:
    """A change that a tightening-only source asked for and that was not applied.

    :ivar field: the dotted path (``license.license_duration``, ``tracks.HD.hdcp``).
    :ivar current: the value that stays.
    :ivar requested: the value that was asked for.
    :ivar why: ``"looser than the policy"`` or ``"not a restriction"``.
    """

    field: str
    current: Any
    requested: Any
    why: str

    def __str__(self) -> str:
        return (
            f"{self.field}: {_show(self.requested)} ignored ({self.why}; "
            f"stays {_show(self.current)})"
        )


@dataclass(frozen=True, slots=True)
class AppliedChange:
    """A change that made a rule stricter.

    :ivar field: the dotted path (``tracks.HD.hdcp``).
    :ivar before: the value it replaced.
    :ivar after: the stricter value.
    """

    field: str
    before: Any
    after: Any

    def __str__(self) -> str:
        return f"{self.field}: {_show(self.before)} -> {_show(self.after)}"


@dataclass(frozen=True, slots=True)
class Tightened(Generic[M]):
    """The result of a tightening: the new value, what changed, what was ignored."""

    value: M
    applied: tuple[AppliedChange, ...] = ()
    ignored: tuple[IgnoredChange, ...] = ()


def _tightened(base: M, claim: M, path: str) -> Tightened[M]:
    applied: list[AppliedChange] = []
    ignored: list[IgnoredChange] = []
    value = _tighten(base, claim, path, applied, ignored)
    return Tightened(value, tuple(applied), tuple(ignored))


_FIELD_NAMES: dict[type[BaseModel], tuple[str, ...]] = {}


def _field_names(model: type[BaseModel]) -> tuple[str, ...]:
    # pydantic's model_fields is a computed property; the hot path reads it once per class.
    names = _FIELD_NAMES.get(model)
    if names is None:
        names = _FIELD_NAMES[model] = tuple(model.model_fields)
    return names


def _tighten(
    base: M, claim: M, path: str, applied: list[AppliedChange], ignored: list[IgnoredChange]
) -> M:
    orders = STRICTNESS.get(type(base), {})
    updates: dict[str, Any] = {}
    for name in _field_names(type(base)):
        wanted = getattr(claim, name)
        current = getattr(base, name)
        if wanted is None:
            continue
        if isinstance(wanted, BaseModel):
            start = current if current is not None else type(wanted)()
            nested = _tighten(start, wanted, f"{path}{name}.", applied, ignored)
            if nested != start:
                updates[name] = nested
            continue
        if wanted == current:
            continue
        order = orders.get(name, FIXED)
        if order.rank is None:
            ignored.append(IgnoredChange(path + name, current, wanted, "not a restriction"))
        elif order.rank(wanted) > order.rank(current):
            updates[name] = wanted
            applied.append(AppliedChange(path + name, current, wanted))
        else:
            ignored.append(IgnoredChange(path + name, current, wanted, "looser than the policy"))
    return base.model_copy(update=updates) if updates else base


def _merge(first: M, second: M) -> M:
    orders = STRICTNESS.get(type(first), {})
    updates: dict[str, Any] = {}
    for name in _field_names(type(first)):
        a, b = getattr(first, name), getattr(second, name)
        if b is None or a == b:
            continue
        if a is None:
            updates[name] = b
        elif isinstance(a, BaseModel):
            updates[name] = _merge(a, b)
        else:
            order = orders.get(name, FIXED)
            if order.rank is not None and order.rank(b) > order.rank(a):
                updates[name] = b
    return first.model_copy(update=updates) if updates else first
