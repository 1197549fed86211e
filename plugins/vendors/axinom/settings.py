"""``[backends.NAME]`` with ``vendor = "axinom"``: the tenant's communication key and URLs."""

from __future__ import annotations

import uuid
from typing import Literal

from pydantic import Field

from proxy import DrmSystem, Duration, Secret, UpstreamSettings

DEFAULT_URLS = {
    DrmSystem.WIDEVINE: "https://drm-widevine-licensing.axprod.net/AcquireLicense",
    DrmSystem.PLAYREADY: "https://drm-playready-licensing.axprod.net/AcquireLicense",
    DrmSystem.FAIRPLAY: "https://drm-fairplay-licensing.axprod.net/AcquireLicense",
}


class AxinomSettings(UpstreamSettings):
    """``[backends.NAME]`` with ``vendor = "axinom"``."""

    com_key_id: uuid.UUID
    """The communication key id (a GUID, from the Axinom portal)."""
    com_key: Secret
    """The communication key by reference; Axinom gives it as base64 of 32 bytes."""
    urls: dict[DrmSystem, str] = Field(default_factory=lambda: dict(DEFAULT_URLS))
    """``AcquireLicense`` URL per DRM (tenant-prefixed hosts go here)."""
    message_ttl: Duration = Field(default=60.0, gt=0, le=86400)
    """Lifetime of each License Service Message (its ``expiration_date``)."""
    message_transport: Literal["header", "query"] = "header"
    """``X-AxDRM-Message`` header, or the ``AxDrmMessage`` query parameter."""
    message_id: bool = True
    """Give each message a fresh ``id`` (GUID)."""
    prevent_drm_message_reuse: bool | None = None
    """``license_server.access_control.prevent_drm_message_reuse``; None: Axinom's default.
    That ``id`` is what reuse prevention keys on is UNVERIFIED."""
    return_license_request_info: bool = False
    """Ask for the License Request Info Message in the response ``X-AxDRM-Message``;
    its ``type`` and ``device_info`` strings go to ``vendor_metadata``."""
    session_id_claim: str | None = "sid"
    """Token claim whose value becomes ``session.id`` (request metadata ``session_id`` wins)."""
    send_allowed_ip_addresses: bool = False
    """Render a policy's single-host ``access.ip_allow`` as
    ``access_control.allowed_ip_addresses`` and send the end user's address in
    ``X-Forwarded-For``. Off by default: Axinom sees the proxy's address, so this only
    works when the tenant believes the proxy's ``X-Forwarded-For``; the proxy enforces
    ``ip_allow`` itself either way."""
    send_playready_device_ids: bool = False
    """Render a trusted caller's device id in ``access_control.playready.allowed_device_ids``
    for policies with ``access.require_device_id``. Axinom expects PlayReady device GUIDs
    (as its License Request Info Message reports them): a device id that is not a GUID is
    ``REQUEST_INVALID``. Off by default: the proxy enforces ``require_device_id`` itself."""
