"""``[backends.NAME]`` with ``vendor = "widevine_cloud"``: the provider and its signing key."""

from __future__ import annotations

from pydantic import Field, model_validator

from proxy import Secret, UpstreamSettings

DEFAULT_URL = "https://license.widevine.com/cenc/getlicense"


class WidevineCloudSettings(UpstreamSettings):
    """``[backends.NAME]`` with ``vendor = "widevine_cloud"``."""

    url: str = DEFAULT_URL
    """The getlicense URL; whether yours ends in ``/<provider>`` is in your onboarding
    document (UNVERIFIED which one an account requires)."""
    provider: str = Field(min_length=1)
    """The provider name (``signer``); ``widevine_test`` on the UAT host."""
    signing_key: Secret | None = None
    """The provider's AES key (hex or base64 text; 16, 24 or 32 bytes) by reference."""
    signing_iv: Secret | None = None
    """The provider's 16-byte IV (hex or base64 text) by reference."""
    sign: bool = True
    """Sign requests; only the public UAT test provider takes unsigned ones."""
    use_policy_overrides_exclusively: bool | None = None
    policy_name: str | None = None
    """A policy registered with Google, applied before ``policy_overrides``."""

    @model_validator(mode="after")
    def _signing_needs_keys(self) -> WidevineCloudSettings:
        if self.sign and (self.signing_key is None or self.signing_iv is None):
            raise ValueError("sign = true needs signing_key and signing_iv")
        if not self.url.startswith(("https://", "http://")):
            raise ValueError("url: not an http(s) URL")
        return self
