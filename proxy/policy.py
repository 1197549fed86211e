"""The vendor-neutral policy: one vocabulary for license rules that every adapter renders.

A ``[[policies]]`` entry is a :class:`Policy`; the policy plugin elects one per
request and hands the pipeline an :class:`EffectivePolicy`: the policy after
any tightening, with each requested key id tied to its track type. Every field
is optional and ``None`` means "the vendor's default": the model never turns
"unset" into ``False`` or ``0``.
"""

from __future__ import annotations

import ipaddress
import uuid
from dataclasses import dataclass, field
from datetime import datetime
from enum import IntEnum, StrEnum
from typing import Any

from pydantic import Field, field_validator, model_validator

from proxy.config import Seconds, StrictModel
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


class Hdcp(StrEnum):
    """Required HDCP version on digital outputs, weakest first."""

    NONE = "HDCP_NONE"
    V1 = "HDCP_V1"
    V2 = "HDCP_V2"
    V2_1 = "HDCP_V2_1"
    V2_2 = "HDCP_V2_2"
    V2_3 = "HDCP_V2_3"
    NO_DIGITAL_OUTPUT = "HDCP_NO_DIGITAL_OUTPUT"

    @property
    def rank(self) -> int:
        """Higher is stricter."""
        return list(Hdcp).index(self)


class CgmsA(StrEnum):
    """CGMS-A copy control on analog outputs, weakest first."""

    COPY_FREE = "COPY_FREE"
    COPY_ONCE = "COPY_ONCE"
    COPY_NEVER = "COPY_NEVER"

    @property
    def rank(self) -> int:
        """Higher is stricter."""
        return list(CgmsA).index(self)


class PlayReadySecurityLevel(IntEnum):
    """PlayReady minimum client security level."""

    SL150 = 150
    SL2000 = 2000
    SL3000 = 3000


class FairPlayHdcp(StrEnum):
    """FairPlay HDCP enforcement, weakest first (Axinom's names)."""

    NONE = "NONE"
    TYPE0 = "TYPE0"
    TYPE1 = "TYPE1"
    TYPE1_STRICT = "TYPE1_STRICT"

    @property
    def rank(self) -> int:
        """Higher is stricter."""
        return list(FairPlayHdcp).index(self)


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
        if isinstance(value, str) and not value.startswith("HDCP_"):
            return f"HDCP_{value}"
        return value


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


#: A required claim: a value, a list of accepted values, or ``{present = true}``.
ClaimCondition = str | int | float | bool | list[str | int | float | bool] | dict[str, bool]


class PolicyMatch(StrictModel):
    """Conditions that must all hold for a policy to be a candidate."""

    claims: dict[str, ClaimCondition] = Field(default_factory=dict)
    drm_systems: list[DrmSystem] | None = None
    content_ids: list[str] | None = None
    """Glob patterns (``movies/*``) the content id must match."""
    key_ids: list[uuid.UUID] | None = None

    @field_validator("claims")
    @classmethod
    def _presence_form(cls, claims: dict[str, Any]) -> dict[str, Any]:
        for name, condition in claims.items():
            if isinstance(condition, dict) and set(condition) != {"present"}:
                raise ValueError(f"claim {name!r}: a table condition must be {{present = true}}")
        return claims


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


@dataclass(slots=True)
class EffectivePolicy:
    """The policy that applies to one request, after any tightening.

    :ivar name: the elected policy's name.
    :ivar policy: the configured policy it came from.
    :ivar license: the license settings to enforce.
    :ivar tracks: track rules by track type (and ``DEFAULT``).
    :ivar key_track_types: the track type of each requested key id, where known.
    :ivar key_rules: per-key rules where something touched one key alone
        (most restrictive already applied); otherwise the track's rules apply.
    """

    name: str
    policy: Policy
    license: LicenseSettings
    tracks: dict[str, TrackRules]
    allowed_track_types: tuple[TrackType, ...] | None = None
    backends: tuple[str, ...] = ()
    key_track_types: dict[bytes, TrackType] = field(default_factory=dict)
    key_rules: dict[bytes, TrackRules] = field(default_factory=dict)

    @classmethod
    def from_policy(
        cls, policy: Policy, key_track_types: dict[bytes, TrackType] | None = None
    ) -> EffectivePolicy:
        """The policy as configured, untightened."""
        return cls(
            name=policy.name,
            policy=policy,
            license=policy.license,
            tracks=dict(policy.tracks),
            allowed_track_types=(
                tuple(policy.allowed_track_types) if policy.allowed_track_types else None
            ),
            backends=tuple(policy.backends),
            key_track_types=dict(key_track_types or {}),
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

    def to_dict(self) -> dict[str, Any]:
        """A JSON-safe view, for dry runs and ``license-proxy explain``."""
        return {
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
