"""``[policy_election]`` and ``[catalog]``: how policies are chosen and how keys get track types."""

from __future__ import annotations

from typing import Any

from pydantic import Field, field_validator

from proxy import ConfigPath, StrictModel
from proxy.policy import TrackType


class PolicyClaimNames(StrictModel):
    """Names of the claims that carry policy (honoured for trusted issuers only).

    An empty name turns that claim off.
    """

    security_policy: str = "security_policy"
    """Verimatrix: security policy id -> per-DRM output and robustness rules."""
    default_security_policy: str = "default_security_policy"
    """Verimatrix: the security policy id for keys no track or track-type policy names."""
    track_policy: str = "track_policy"
    """Verimatrix: key id -> security policy id."""
    track_type_policy: str = "track_type_policy"
    """Verimatrix: track type -> security policy id."""
    license_policy: str = "policy"
    """Verimatrix: per-DRM license settings (durations, persistence, renewal)."""
    usage_policies: str = "content_key_usage_policies"
    """Axinom: a list of named usage policies with widevine/playready/fairplay sections."""
    key_usage: str = "content_keys_source"
    """Axinom: ``{"inline": [{"id": key id, "usage_policy": name}]}``."""


class ElectionSettings(StrictModel):
    """``[policy_election]``."""

    name_claim: str = "policy_name"
    """A claim by which a token names its policy (Azure's ``policy_name``), honoured only
    among the policies its claims match; empty turns it off."""
    key_track_types_claim: str = "key_track_types"
    """A claim mapping key ids to track types (trusted issuers only); empty turns it off."""
    policy_claims: PolicyClaimNames = PolicyClaimNames()


class CatalogSettings(StrictModel):
    """``[catalog]``: which key ids each content holds, and their track types."""

    file: ConfigPath | None = None
    """A JSON or TOML file of the same shape as ``contents`` (``{"contents": {...}}``)."""
    contents: dict[str, dict[str, TrackType]] = Field(default_factory=dict)
    """Content id -> key id (UUID, hex or base64) -> track type."""

    @field_validator("contents", mode="before")
    @classmethod
    def _track_type_case(cls, contents: Any) -> Any:
        if not isinstance(contents, dict):
            return contents
        return {
            content: (
                {k: v.upper() if isinstance(v, str) else v for k, v in keys.items()}
                if isinstance(keys, dict)
                else keys
            )
            for content, keys in contents.items()
        }
