"""Widevine as the Azure/MK.IO license template (seed 000), and what each request carries.

A raw request (PlayReady, FairPlay, and Widevine unless ``widevine_request =
"template"``) carries the challenge and a token, no policy rule at all; the
template carries every Widevine rule in Google's vocabulary (:func:`renderings`).
"""

from __future__ import annotations

from typing import Any

from plugins.vendors.azure.settings import AzureSettings
from proxy import (
    WIDEVINE_RENDERING,
    WIDEVINE_TRANSIENT_STATUSES,
    DrmSystem,
    Reason,
    Rendering,
    UpstreamResponse,
    VendorCall,
    b64,
    b64decode_any,
    bad_response,
    json_object,
    vendor_error,
    widevine_content_id,
    widevine_policy_overrides,
    widevine_track_selection,
)
from proxy.policy import LicenseSettings

VENDOR = "azure"
AZURE_DRMS = frozenset({DrmSystem.WIDEVINE, DrmSystem.PLAYREADY, DrmSystem.FAIRPLAY})
#: Widevine template ``allowed_track_types`` values Azure takes (VENDOR_FACTS 3.6).
TEMPLATE_SHORT_FORMS = ("SD_ONLY", "SD_HD")
_RAW_HINT = (
    "this backend sends the challenge and a token only: set policy_enforced_by_vendor "
    "(true, or a list of DRMs) when the content key policy at Azure/MK.IO enforces it"
)


def renderings(settings: AzureSettings) -> dict[DrmSystem, Rendering]:
    """What a backend's requests carry per DRM: the Widevine template carries every
    Widevine rule; a raw request none (``policy_enforced_by_vendor`` may hand them to
    the content key policy at Azure/MK.IO)."""
    found: dict[DrmSystem, Rendering] = {}
    for drm in AZURE_DRMS:
        if drm is DrmSystem.WIDEVINE and settings.widevine_request == "template":
            found[drm] = WIDEVINE_RENDERING
        else:
            found[drm] = Rendering(hints={"default": _RAW_HINT})
    return found


def widevine_template(
    call: VendorCall, provider: str | None, exclusive: bool | None, settings: LicenseSettings
) -> dict[str, Any]:
    """The Widevine license template (seed 000) for ``call``, challenge as ``payload``.

    :param settings: the license settings :func:`proxy.prepare` returned.
    """
    doc: dict[str, Any] = {"payload": b64(call.challenge.payload)}
    content_id = widevine_content_id(call)
    if content_id:
        doc["content_id"] = b64(content_id)
    if provider:
        doc["provider"] = provider
    doc.update(widevine_track_selection(call.policy, TEMPLATE_SHORT_FORMS))
    overrides = widevine_policy_overrides(settings)
    if overrides:
        doc["policy_overrides"] = overrides
    if exclusive is not None:
        doc["use_policy_overrides_exclusively"] = exclusive
    return doc


def template_answer(response: UpstreamResponse) -> bytes:
    """The license in a JSON answer to a template request: ``status`` then base64 ``license``."""
    doc = json_object(VENDOR, response)
    status = doc.get("status", "OK")
    if status != "OK":
        transient = status in WIDEVINE_TRANSIENT_STATUSES
        raise vendor_error(
            Reason.UPSTREAM_UNAVAILABLE if transient else Reason.UPSTREAM_REJECTED,
            VENDOR,
            "the Widevine license service failed"
            if transient
            else "the Widevine license service refused the license",
            status=response.status,
            code=str(status),
            message=str(doc.get("status_message", "")),
        )
    license_b64 = doc.get("license")
    if not isinstance(license_b64, str):
        raise bad_response(VENDOR, "has no license")
    try:
        return b64decode_any(license_b64)
    except ValueError:
        raise bad_response(VENDOR, "has a license that is not base64") from None
