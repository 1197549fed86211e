"""The KeyOS Authentication XML: what the elected policy becomes in it, and its signature.

``<KeyOSAuthenticationXML><Data>…</Data><Signature>base64</Signature></KeyOSAuthenticationXML>``
(VENDOR_FACTS 12.3, 12.4), written with no whitespace between elements as BuyDRM's
sample token is. ``Data`` holds the times, a fresh ``UniqueId``, the key's
``RSAPubKeyId`` and the request's DRM section:

- Widevine: ``WidevinePolicy`` (``fl_CanPlay``, ``fl_CanPersist``, ``LicenseDuration``)
  and a ``WidevineContentKeySpec`` per track type (``SecurityLevel``, ``RequiredHDCP``,
  ``RequiredCGMS``);
- PlayReady: a ``License`` per key naming a ``Policy`` (``MinimumSecurityLevel``) and a
  ``Play`` (``OutputProtections/OPL``);
- FairPlay: ``FairPlayPolicy`` (``persistent``).

The signature is RSA PKCS#1 v1.5 over the ``Data`` element (digest and exact bytes
are settings: both are UNVERIFIED). What the XML can carry per DRM is
:func:`renderings`.
"""

from __future__ import annotations

import base64
import uuid
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any
from xml.etree import ElementTree as ET  # builds and writes only; nothing untrusted is parsed

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from plugins.vendors.keyos.settings import KeyOSSettings
from proxy import (
    DrmSystem,
    ProxyError,
    Reason,
    Rendering,
    RequestType,
    VendorCall,
    guid,
    widevine_track_selection,
)
from proxy.policy import EffectivePolicy, LicenseSettings, PlayReadyOutputProtection, TrackRules

#: ``GenerationTime`` / ``ExpirationTime``: ``yyyy-MM-dd HH:mm:ss.fff``, UTC.
TIME_FORMAT = "%Y-%m-%d %H:%M:%S"
#: Our PlayReady output protection names -> the ``OPL`` children (the three video ones are
#: seen in third-party tokens; the audio ones follow their pattern, UNVERIFIED).
OPL_ELEMENTS = {
    "compressed_digital_video": "CompressedDigitalVideo",
    "uncompressed_digital_video": "UncompressedDigitalVideo",
    "analog_video": "AnalogVideo",
    "compressed_digital_audio": "CompressedDigitalAudio",
    "uncompressed_digital_audio": "UncompressedDigitalAudio",
}
#: Stable ids for the ``Policy`` and ``Play`` elements of equal rules.
_IDS = uuid.UUID("5b1f0c4e-2f59-4d1e-9a0c-6b7d8e9f0a1b")
_DIGESTS = {"sha1": hashes.SHA1, "sha256": hashes.SHA256}

_UNSEEN = (
    "no such field is seen in KeyOS Authentication XML samples (BuyDRM's schema is in "
    "its customer wiki, not public): set policy_enforced_by_vendor for this DRM when "
    "the KeyOS account enforces it"
)
_KEYS = (
    "set restrict_keys = true to list the allowed keys in KeyIDList (UNVERIFIED that "
    "KeyOS then licenses those keys only), or policy_enforced_by_vendor when the KeyOS "
    "account does"
)


def renderings(settings: KeyOSSettings) -> dict[DrmSystem, Rendering]:
    """What the Authentication XML carries per DRM for a backend with ``settings``."""
    hints = {"default": _UNSEEN, "allowed_track_types": _KEYS}
    restrict = settings.restrict_keys
    return {
        DrmSystem.WIDEVINE: Rendering(
            # The rental window is folded into LicenseDuration (the shorter of the two).
            license=frozenset({"can_play", "persistent", "license_duration", "rental_duration"}),
            tracks=frozenset({"widevine_security_level", "hdcp", "cgms_a"}),
            allowed_track_types=restrict,
            per_key=True,
            hints=hints,
        ),
        DrmSystem.PLAYREADY: Rendering(
            tracks=frozenset({"playready_min_security_level", "playready_output_protection"}),
            allowed_track_types=restrict,
            per_key=True,
            hints=hints,
        ),
        DrmSystem.FAIRPLAY: Rendering(
            license=frozenset({"persistent"}), allowed_track_types=restrict, hints=hints
        ),
    }


def keyos_time(instant: float) -> str:
    """An instant as KeyOS writes it: ``2016-11-19 09:34:01.992`` (UTC)."""
    moment = datetime.fromtimestamp(instant, UTC)
    return f"{moment.strftime(TIME_FORMAT)}.{moment.microsecond // 1000:03d}"


def license_duration(settings: LicenseSettings) -> int | None:
    """``LicenseDuration``: the license duration, or the rental window when shorter (KeyOS
    shows no rental field; the shorter is never looser). 0 (unlimited) gives way."""
    limits = [d for d in (settings.license_duration, settings.rental_duration) if d]
    if limits:
        return min(limits)
    return settings.license_duration


def text_element(parent: ET.Element, tag: str, value: Any) -> ET.Element:
    """A child ``tag`` of ``parent`` holding ``value`` as text (escaped when written)."""
    child = ET.SubElement(parent, tag)
    child.text = str(value)
    return child


def _flag(value: bool) -> str:
    return "true" if value else "false"


def widevine_section(data: ET.Element, policy: EffectivePolicy, settings: LicenseSettings) -> None:
    """``WidevinePolicy`` and the ``WidevineContentKeySpec`` elements.

    Both flags are always written (as BuyDRM's sample does): ``fl_CanPersist`` is
    ``false`` unless the policy says ``persistent = true``, never looser.
    """
    widevine = ET.SubElement(data, "WidevinePolicy")
    widevine.set("fl_CanPlay", _flag(settings.can_play is not False))
    widevine.set("fl_CanPersist", _flag(settings.persistent is True))
    duration = license_duration(settings)
    if duration is not None:
        text_element(widevine, "LicenseDuration", duration)
    for spec in widevine_track_selection(policy, short_forms=()).get("content_key_specs", []):
        element = ET.SubElement(data, "WidevineContentKeySpec", TrackType=spec["track_type"])
        if "security_level" in spec:
            text_element(element, "SecurityLevel", spec["security_level"])
        protection = spec.get("required_output_protection", {})
        if "hdcp" in protection:
            text_element(element, "RequiredHDCP", protection["hdcp"])
        if "cgms_flags" in protection:
            text_element(element, "RequiredCGMS", protection["cgms_flags"])


def _playready_rules(rules: TrackRules) -> tuple[int | None, dict[str, int]]:
    level = rules.playready_min_security_level
    opl: dict[str, int] = {}
    protection = rules.playready_output_protection
    if protection is not None:
        for name in PlayReadyOutputProtection.model_fields:
            value = getattr(protection, name)
            if value is not None:
                opl[name] = int(value)
    return (int(level) if level is not None else None), opl


def _element_id(kind: str, value: Any) -> str:
    return str(uuid.uuid5(_IDS, f"{kind}:{value!r}"))


def playready_section(
    data: ET.Element, policy: EffectivePolicy, key_ids: Iterable[bytes], license_request: bool
) -> None:
    """A ``License`` per key naming its ``Policy`` and ``Play``, or one bare ``License`` when no
    PlayReady rule applies. Equal rules share one ``Policy``/``Play`` (stable ids)."""
    keys = list(key_ids)
    per_key = {key: _playready_rules(policy.rules_for_key(key)) for key in keys}
    configured = [_playready_rules(r) for r in policy.tracks.values()]
    configured += [_playready_rules(r) for r in policy.key_rules.values()]
    has_rules = any(level is not None or opl for level, opl in configured)
    if not has_rules:
        ET.SubElement(data, "License", type="simple")
        return
    if not keys and license_request:
        raise ProxyError(
            Reason.REQUEST_INVALID,
            "KeyOS PlayReady rules are per key, and the challenge names none: send key_id hints",
        )
    definitions: dict[str, ET.Element] = {}
    for key, (level, opl) in per_key.items():
        license_element = ET.SubElement(data, "License", type="simple")
        text_element(license_element, "KeyId", guid(key))
        if level is not None:
            policy_id = _element_id("policy", level)
            text_element(ET.SubElement(license_element, "Policy"), "Id", policy_id)
            if policy_id not in definitions:
                definition = ET.Element("Policy", id=policy_id)
                text_element(definition, "MinimumSecurityLevel", level)
                definitions[policy_id] = definition
        if opl:
            play_id = _element_id("play", sorted(opl.items()))
            text_element(ET.SubElement(license_element, "Play"), "Id", play_id)
            if play_id not in definitions:
                play = ET.Element("Play", id=play_id)
                levels = ET.SubElement(ET.SubElement(play, "OutputProtections"), "OPL")
                for name, tag in OPL_ELEMENTS.items():
                    if name in opl:
                        text_element(levels, tag, opl[name])
                definitions[play_id] = play
    data.extend(definitions.values())


def fairplay_section(data: ET.Element, settings: LicenseSettings) -> None:
    """``FairPlayPolicy``, with ``persistent`` when the policy says."""
    element = ET.SubElement(data, "FairPlayPolicy")
    if settings.persistent is not None:
        element.set("persistent", _flag(settings.persistent))


def allowed_keys(policy: EffectivePolicy, key_ids: Iterable[bytes]) -> list[bytes]:
    """The keys of track types the policy allows (keys of unknown type stay in)."""
    allowed = policy.allowed_track_types
    return [
        key
        for key in key_ids
        if allowed is None
        or policy.key_track_types.get(key) is None
        or policy.key_track_types[key] in allowed
    ]


def data_element(
    call: VendorCall,
    prepared: LicenseSettings,
    options: KeyOSSettings,
    now: float,
    unique_id: str,
) -> ET.Element:
    """The ``Data`` element for ``call``.

    :param prepared: the license settings :func:`proxy.prepare` returned (window
        checked, durations capped by ``expiry``).
    :param options: the backend's settings (key hash, lifetime, ``restrict_keys``...).
    """
    data = ET.Element("Data")
    text_element(data, "GenerationTime", keyos_time(now))
    text_element(data, "ExpirationTime", keyos_time(now + options.auth_xml_ttl))
    text_element(data, "UniqueId", unique_id)
    text_element(data, "RSAPubKeyId", options.rsa_pub_key_id.lower())
    policy = call.policy
    license_request = call.challenge.request_type is RequestType.NEW
    keys = allowed_keys(policy, call.key_ids)
    if license_request and call.key_ids and not keys:
        raise ProxyError(
            Reason.UPSTREAM_REJECTED,
            "the policy allows none of the requested keys",
            metadata={"vendor": "keyos", "vendor_code": "NO_KEYS_ALLOWED"},
        )
    drm = call.challenge.drm_system
    if drm is DrmSystem.WIDEVINE:
        widevine_section(data, policy, prepared)
    elif drm is DrmSystem.PLAYREADY:
        playready_section(data, policy, keys, license_request)
    else:
        fairplay_section(data, prepared)
    if options.restrict_keys and license_request:
        if not keys and policy.allowed_track_types is not None:
            raise ProxyError(
                Reason.REQUEST_INVALID,
                "KeyOS leaves keys out by KeyIDList, and the request names none: send key_id hints",
            )
        if keys:
            listed = ET.SubElement(data, "KeyIDList")
            for key in keys:
                text_element(listed, "KeyID", guid(key))
    subject = call.principal.subject
    if options.send_username and subject:
        text_element(data, "Username", subject)
    return data


def serialize(element: ET.Element) -> str:
    """An element as KeyOS tokens write it: no declaration, no whitespace, ``<Empty />``."""
    return ET.tostring(element, encoding="unicode", short_empty_elements=True)


def signed_bytes(data_xml: str, signed_content: str) -> bytes:
    """The bytes the signature covers: ``<Data>…</Data>`` as written, or its C14N form."""
    if signed_content == "data_c14n":
        return ET.canonicalize(xml_data=data_xml).encode("utf-8")
    return data_xml.encode("utf-8")


def sign(key: rsa.RSAPrivateKey, data_xml: str, digest: str, signed_content: str) -> bytes:
    """RSA PKCS#1 v1.5 over the ``Data`` element."""
    return key.sign(signed_bytes(data_xml, signed_content), padding.PKCS1v15(), _DIGESTS[digest]())


def token(data_xml: str, signature: bytes) -> str:
    """The header value: base64 of the whole Authentication XML."""
    signature_text = base64.b64encode(signature).decode("ascii")
    document = (
        f"<KeyOSAuthenticationXML>{data_xml}<Signature>{signature_text}</Signature>"
        "</KeyOSAuthenticationXML>"
    )
    return base64.b64encode(document.encode("utf-8")).decode("ascii")
