"""The Customer Rights Token (CRT) rendered from the elected policy, and what it can carry.

A CRT (VENDOR_FACTS 9.5) names the asset (``assetId``, ``variantId``), templates to
apply (``ref``), a ``profile`` (``purchase``, or ``rental`` with ISO 8601
``relativeExpiration`` and ``playDuration``), ``storeLicense``, and per quality
class Widevine rules (``op.config.<class>.WidevineM`` = ``{minSL, requireHDCP}``).
Nothing else of its schema is public, so nothing else is rendered: what a backend
carries per DRM is :func:`renderings`.
"""

from __future__ import annotations

import re
from typing import Any

from plugins.vendors.drmtoday.settings import DrmTodaySettings
from proxy import DrmSystem, EffectivePolicy, Rendering, TrackRules, TrackType
from proxy.policy import Hdcp, LicenseSettings

VENDOR = "drmtoday"
DRMTODAY_DRMS = frozenset({DrmSystem.WIDEVINE, DrmSystem.PLAYREADY, DrmSystem.FAIRPLAY})
#: License settings a CRT carries for every DRM: the rental window folded into
#: ``relativeExpiration`` (the shorter of the two), ``expiry`` through the capped durations.
LICENSE = frozenset({"persistent", "license_duration", "rental_duration", "playback_duration"})
#: Widevine track rules ``WidevineM`` carries.
WIDEVINE_TRACKS = frozenset({"widevine_security_level", "hdcp"})

_HINTS = {
    "license": "DRMtoday's CRT has no field for it; set policy_enforced_by_vendor when a CRT "
    "template (crt_ref) at DRMtoday enforces it",
    "renewal": "DRMtoday's renewal fields are UNVERIFIED, so no renewal rule is rendered",
    "tracks": "the CRT carries Widevine minSL and requireHDCP per quality class "
    "(op.config.<class>.WidevineM) for the track types in quality_classes, and no other "
    "track rule (its PlayReady and FairPlay fields are UNVERIFIED); set "
    "policy_enforced_by_vendor when a CRT template at DRMtoday enforces them",
    "allowed_track_types": "DRMtoday licenses every key of the asset; serve such policies "
    "from a backend that leaves keys out (Axinom, DoveRunner, Widevine cloud)",
}


def renderings(settings: DrmTodaySettings) -> dict[DrmSystem, Rendering]:
    """What a DRMtoday backend's CRT carries per DRM: the license settings everywhere; for
    Widevine also minSL and HDCP of the track types its ``quality_classes`` map."""
    found = {drm: Rendering(license=LICENSE, hints=_HINTS) for drm in DRMTODAY_DRMS}
    found[DrmSystem.WIDEVINE] = Rendering(
        license=LICENSE,
        tracks=WIDEVINE_TRACKS,
        track_types=frozenset(t.value for t in settings.quality_classes),
        per_key=True,
        hints=_HINTS,
    )
    return found


def iso_duration(seconds: int) -> str:
    """Seconds as an ISO 8601 duration, largest units first (``P2D``, ``PT4H``, ``P1DT30M``)."""
    days, rest = divmod(int(seconds), 86400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    time = "".join(f"{n}{unit}" for n, unit in ((hours, "H"), (minutes, "M"), (secs, "S")) if n)
    text = "P" + (f"{days}D" if days else "") + (f"T{time}" if time else "")
    return text if text != "P" else "PT0S"


def profile(settings: LicenseSettings, shape: str) -> dict[str, Any]:
    """``purchase`` when nothing limits the license in time, else ``rental``.

    ``relativeExpiration`` is the shorter of the license and rental durations (the CRT
    has one window from delivery; 0 gives way to the other), ``playDuration`` the
    playback duration. ``shape`` is ``typed`` (``{"type": "rental", ...}``) or
    ``keyed`` (``{"rental": {...}}``).
    """
    limits = [d for d in (settings.license_duration, settings.rental_duration) if d]
    terms: dict[str, Any] = {}
    if limits:
        terms["relativeExpiration"] = iso_duration(min(limits))
    if settings.playback_duration:
        terms["playDuration"] = iso_duration(settings.playback_duration)
    kind = "rental" if terms else "purchase"
    if shape == "keyed":
        return {kind: terms}
    return {"type": kind, **terms}


def hdcp_name(hdcp: Hdcp, names: str) -> str:
    """``requireHDCP``: ``HDCP_V22`` (``compact``, as castLabs writes it) or ``HDCP_V2_2``."""
    if names == "compact":
        return re.sub(r"V(\d)_(\d)", r"V\1\2", hdcp.value)
    return hdcp.value


def class_rules(policy: EffectivePolicy, tracks: list[TrackType]) -> TrackRules:
    """The rules a quality class carries: the strictest of its track types' rules, each
    tightened by the rules of any key of that type."""
    rules = [policy.rules_for_track(t) for t in tracks]
    rules += [
        key_rules
        for key_id, key_rules in policy.key_rules.items()
        if policy.key_track_types.get(key_id) in tracks
    ]
    return rules[0].most_restrictive(*rules[1:])


def output_protection(
    policy: EffectivePolicy, classes: dict[TrackType, str], names: str
) -> dict[str, Any]:
    """``op``: ``{"config": {<class>: {"WidevineM": {minSL, requireHDCP}}}}``, or empty."""
    by_class: dict[str, list[TrackType]] = {}
    for track in TrackType:
        if track in classes:
            by_class.setdefault(classes[track], []).append(track)
    config: dict[str, Any] = {}
    for name, tracks in by_class.items():
        rules = class_rules(policy, tracks)
        widevine: dict[str, Any] = {}
        if rules.widevine_security_level is not None:
            widevine["minSL"] = int(rules.widevine_security_level)
        if rules.hdcp is not None:
            widevine["requireHDCP"] = hdcp_name(rules.hdcp, names)
        if widevine:
            config[name] = {"WidevineM": widevine}
    return {"config": config} if config else {}


def customer_rights(
    settings: LicenseSettings,
    policy: EffectivePolicy,
    drm: DrmSystem,
    backend: DrmTodaySettings,
    asset_id: str | None,
    variant_id: str | None,
) -> dict[str, Any]:
    """The CRT for one request, keys in the order castLabs' examples use.

    :param settings: the license settings :func:`proxy.prepare` returned.
    """
    crt: dict[str, Any] = {}
    if backend.crt_ref:
        crt["ref"] = list(backend.crt_ref)
    if asset_id:
        crt["assetId"] = asset_id
    if variant_id:
        crt["variantId"] = variant_id
    crt["profile"] = profile(settings, backend.crt_profile)
    if settings.persistent is not None:
        crt["storeLicense"] = settings.persistent
    if drm is DrmSystem.WIDEVINE:
        op = output_protection(policy, backend.quality_classes, backend.hdcp_names)
        if op:
            crt["op"] = op
    return crt
