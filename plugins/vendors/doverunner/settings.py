"""``[backends.NAME]`` with ``vendor = "doverunner"``: the site, its two keys, the answer format.

Facts the public material leaves open (VENDOR_FACTS 10, UNVERIFIED) are settings here,
each defaulting to the documented or observed choice; docs/vendors.md lists them.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field, field_validator

from proxy import DrmSystem, Secret, UpstreamSettings

DEFAULT_URL = "https://drm-license.doverunner.com/ri/licenseManager.do"


class DoveRunnerSettings(UpstreamSettings):
    """``[backends.NAME]`` with ``vendor = "doverunner"``."""

    url: str = DEFAULT_URL
    """The license URL, one for every DRM (older hosts: ``license.pallycon.com``,
    ``license-global.pallycon.com``; regional: ``drm-license-seoul.doverunner.com``)."""
    site_id: str = Field(pattern=r"^[A-Za-z0-9]{4}$")
    """The 4-character site id from the console."""
    site_key: Secret
    """The 32-character site key by reference; its text is the AES-256 key of the policy."""
    access_key: Secret
    """The 32-character access key by reference; it opens the token's hash."""
    response_format: Literal["json", "original"] = "json"
    """``json`` (DoveRunner's own proxies): the answer carries the device id, which goes to
    ``vendor_metadata``; ``original``: the DRM's own answer."""
    key_rotation: bool = False
    """The token's ``key_rotation``."""
    custom_data_in: Literal["header", "query"] = "header"
    """``pallycon-customdata-v2`` as a header (every vendor sample) or a query parameter."""
    allowed_track_types_drms: list[DrmSystem] = Field(default_factory=lambda: [DrmSystem.WIDEVINE])
    """DRMs whose licenses honour ``playback_policy.allowed_track_types`` (Widevine's
    names; whether PlayReady and FairPlay licenses leave tracks out is UNVERIFIED). A policy
    with ``allowed_track_types`` served for another DRM fails the start."""
    service_certificate_content_id: str = Field(default="service-certificate", min_length=1)
    """``cid`` of a Widevine service-certificate request that names no content (whether
    DoveRunner reads it for one is UNVERIFIED)."""

    @field_validator("url")
    @classmethod
    def _http_url(cls, url: str) -> str:
        if not url.startswith(("https://", "http://")):
            raise ValueError(f"{url!r} is not an http(s) URL")
        return url
