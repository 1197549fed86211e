"""The DRM vocabulary every other module speaks: systems, request types, key id display."""

from __future__ import annotations

import uuid
from enum import StrEnum


class DrmSystem(StrEnum):
    """A DRM system, named as in the HTTP route ``/v1/licenses/{drm}``."""

    WIDEVINE = "widevine"
    PLAYREADY = "playready"
    FAIRPLAY = "fairplay"
    CLEARKEY = "clearkey"


class RequestType(StrEnum):
    """What a challenge asks for."""

    NEW = "new"
    RENEWAL = "renewal"
    RELEASE = "release"
    SERVICE_CERTIFICATE = "service_certificate"


#: The media type each DRM's player expects its license in over HTTP.
LICENSE_CONTENT_TYPES: dict[DrmSystem, str] = {
    DrmSystem.WIDEVINE: "application/octet-stream",
    DrmSystem.PLAYREADY: "text/xml; charset=utf-8",
    DrmSystem.FAIRPLAY: "application/octet-stream",
    DrmSystem.CLEARKEY: "application/json",
}


def key_id_uuid(key_id: bytes) -> str:
    """Show a canonical 16-byte key id as a UUID string."""
    return str(uuid.UUID(bytes=key_id)) if len(key_id) == 16 else key_id.hex()


__all__ = ["LICENSE_CONTENT_TYPES", "DrmSystem", "RequestType", "key_id_uuid"]
