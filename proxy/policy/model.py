"""The policy model: a ``[[policies]]`` entry, its license settings and per-track rules.

Every field is optional and ``None`` means "the vendor's default": the model
never turns "unset" into ``False`` or ``0``.
"""

from __future__ import annotations

import contextlib
import ipaddress
import uuid
from datetime import datetime
from typing import Any

from pydantic import Field, field_validator, model_validator

from proxy.drm import DrmSystem
from proxy.encoding import parse_key_id
from proxy.fields import Seconds, StrictModel
from proxy.policy.strictness import (
    DURATION,
    EARLIER,
    FIXED,
    LATER,
    LEVEL,
    PERMISSION,
    RANKED,
    RESTRICTION,
    STRICTNESS,
    Tightened,
    merge,
    tightened,
)
from proxy.policy.vocabulary import (
    DEFAULT_TRACK,
    CgmsA,
    FairPlayHdcp,
    Hdcp,
    PlayReadySecurityLevel,
    TrackType,
    WidevineSecurityLevel,
)


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
            merged = merge(merged, other)
        return merged

    def tightened_by(self, claim: TrackRules, *, path: str = "") -> Tightened[TrackRules]:
        """These rules after a change that may only make them stricter.

        Every field the claim sets is applied when it is stricter than the
        current value and ignored otherwise (reported in ``ignored``); a field
        left unset counts as the weakest value for a restriction, and a claim
        can't grant a permission (``fairplay_allow_airplay = true``) that the
        policy left unset.
        """
        return tightened(self, claim, path)

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
            merged = merge(merged, other)
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
        return tightened(self, claim, path)


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


STRICTNESS.update(
    #: Field by field, which values are stricter. A field missing here is treated as
    #: FIXED (a claim can't change it), so a field added later is never loosened by accident.
    {
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
)
