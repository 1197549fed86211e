"""``[backends.NAME]`` with ``vendor = "clearkey"``: where the keys come from."""

from __future__ import annotations

from typing import Any

from pydantic import Field, field_validator, model_validator

from proxy import BackendSettings, ConfigPath, Secret, parse_key_id


class ClearKeySettings(BackendSettings):
    """``[backends.NAME]`` with ``vendor = "clearkey"``."""

    keys: dict[str, Secret] = Field(default_factory=dict)
    """Key id (UUID, hex or base64url) -> key reference (``hex:...``, ``env:...``)."""
    keys_file: ConfigPath | None = None
    """A JSON file: a key set ``{"keys": [{"kid": ..., "k": ...}]}`` or ``{kid: key-hex}``."""
    key_seed: Secret | None = None
    """Derive the key of any key id from this seed."""

    @field_validator("keys")
    @classmethod
    def _valid_entries(cls, keys: dict[str, Any]) -> dict[str, Any]:
        for kid, secret in keys.items():
            parse_key_id(kid)
            if len(secret.value) != 16:
                raise ValueError(f"the key for {kid} is {len(secret.value)} bytes, not 16")
        return keys

    @model_validator(mode="after")
    def _has_a_source(self) -> ClearKeySettings:
        if not self.keys and self.keys_file is None and self.key_seed is None:
            raise ValueError("give keys, keys_file or key_seed")
        if self.key_seed is not None and len(self.key_seed.value) < 16:
            raise ValueError("key_seed must be at least 16 bytes")
        return self
