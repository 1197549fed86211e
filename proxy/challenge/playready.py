"""PlayReady challenges: the SOAP ``AcquireLicense`` body, or the UTF-16
``PlayReadyKeyMessage`` wrapper that browser EME hands to naive clients.

Path to what we read (local names; namespaces vary between clients)::

    Envelope/Body/AcquireLicense/challenge/Challenge/LA/
        Version                      the protocol version
        ContentHeader/WRMHEADER      key ids (4.0: DATA/KID; 4.1: DATA/PROTECTINFO/KID@VALUE;
                                     4.2 and 4.3: DATA/PROTECTINFO/KIDS/KID@VALUE)
        CLIENTINFO/CLIENTVERSION     the client's version
        CustomData                   the application's custom data (tokens travel here)
        LicenseNonce, ClientTime

Key ids are base64 little-endian GUIDs; they are turned into canonical
(big-endian, UUID order) bytes. ``EncryptedData`` (the client certificate) is
opaque to anyone but the license server and is not read.
"""

from __future__ import annotations

import base64
import binascii
import uuid
import xml.etree.ElementTree as ET
from typing import Any

from proxy.challenge.common import KeyIds, Warnings, invalid, safe_text
from proxy.challenge.xmlsafe import child, children, local_name, looks_like_xml, parse_xml, text_of
from proxy.model import ChallengeInfo, DrmSystem, RequestType

DRM = "PlayReady"
HEADER_VERSIONS = ("4.0.0.0", "4.1.0.0", "4.2.0.0", "4.3.0.0")
_PROTECTION_SCHEMES = {"AESCTR": "cenc", "AESCBC": "cbcs", "COCKTAIL": "cocktail"}
#: Longest custom data kept (it is sent to vendors as is, so it is never cut).
MAX_CUSTOM_DATA = 16 * 1024


def looks_like_playready(body: bytes) -> bool:
    """A cheap sniff: PlayReady is the only XML challenge (UTF-8 or UTF-16)."""
    return looks_like_xml(body)


def decode_key_id(text: str, where: str = "a key id") -> bytes:
    """A canonical 16-byte key id from PlayReady's base64 little-endian GUID.

    :raises ProxyError: CHALLENGE_INVALID when it is not base64 of 16 bytes.
    """
    try:
        raw = base64.b64decode("".join(text.split()), validate=True)
    except (binascii.Error, ValueError):
        raise invalid(DRM, f"{where} is not base64") from None
    if len(raw) != 16:
        raise invalid(DRM, f"{where} is {len(raw)} bytes, not 16")
    return uuid.UUID(bytes_le=raw).bytes


def parse_playready(body: bytes) -> ChallengeInfo:
    """Read a PlayReady license acquisition challenge.

    :raises ProxyError: CHALLENGE_INVALID, with a short reason, when it is unreadable.
    """
    root = parse_xml(body, DRM)
    details: dict[str, Any] = {}
    payload = body
    if local_name(root) == "PlayReadyKeyMessage":
        payload = unwrap_key_message(root)
        details["playready_unwrapped"] = True
        root = parse_xml(payload, DRM)
    warnings = Warnings()
    client: dict[str, str] = {}
    la = _license_acquisition(root)
    key_ids = KeyIds(DRM)
    header = child(child(la, "ContentHeader"), "WRMHEADER")
    if header is None:
        raise invalid(DRM, "the challenge holds no WRMHEADER")
    read_header(header, key_ids, details, warnings)
    version = text_of(child(la, "Version"))
    if version:
        client["protocol_version"] = safe_text(version, 16)
    client_version = text_of(child(child(la, "CLIENTINFO"), "CLIENTVERSION"))
    if client_version:
        client["client_version"] = safe_text(client_version, 64)
    custom = child(la, "CustomData")
    if custom is not None:
        details["playready_custom_data"] = _custom_data(custom)
    nonce = text_of(child(la, "LicenseNonce"))
    if nonce:
        details["playready_license_nonce"] = safe_text(nonce, 64)
    client_time = text_of(child(la, "ClientTime"))
    if client_time and client_time.isdigit() and len(client_time) <= 12:
        details["playready_client_time"] = int(client_time)
    if not len(key_ids):
        warnings.add("the WRMHEADER names no key id")
    return ChallengeInfo(
        drm_system=DrmSystem.PLAYREADY,
        request_type=RequestType.NEW,
        payload=payload,
        key_ids=key_ids.result(),
        client=client,
        warnings=warnings.result(),
        details=details,
    )


def unwrap_key_message(root: ET.Element) -> bytes:
    """The SOAP body inside a ``PlayReadyKeyMessage``: its base64 ``Challenge``, decoded."""
    kind = root.get("type")
    if kind is not None and kind != "LicenseAcquisition":
        raise invalid(DRM, f"a {safe_text(kind, 32)} key message is not a license acquisition")
    challenge = child(child(root, "LicenseAcquisition"), "Challenge")
    if challenge is None:
        raise invalid(DRM, "the key message holds no Challenge")
    encoding = challenge.get("encoding", "base64encoded")
    if encoding != "base64encoded":
        raise invalid(DRM, "the key message's Challenge is not base64encoded")
    try:
        soap = base64.b64decode("".join((challenge.text or "").split()), validate=True)
    except (binascii.Error, ValueError):
        raise invalid(DRM, "the key message's Challenge is not base64") from None
    if not soap:
        raise invalid(DRM, "the key message's Challenge is empty")
    return soap


def _license_acquisition(root: ET.Element) -> ET.Element:
    if local_name(root) != "Envelope":
        raise invalid(DRM, "not a SOAP envelope")
    body = child(root, "Body")
    if body is None:
        raise invalid(DRM, "the SOAP envelope has no Body")
    action = next(iter(body), None)
    if action is None:
        raise invalid(DRM, "the SOAP Body is empty")
    if local_name(action) != "AcquireLicense":
        name = safe_text(local_name(action), 48)
        raise invalid(DRM, f"{name} is not an AcquireLicense request")
    la = child(child(child(action, "challenge"), "Challenge"), "LA")
    if la is None:
        raise invalid(DRM, "the AcquireLicense request holds no challenge/Challenge/LA")
    return la


def read_header(
    header: ET.Element, key_ids: KeyIds, details: dict[str, Any], warnings: Warnings
) -> None:
    """Read a WRMHEADER (any version) into ``key_ids`` and ``details``.

    Key ids are collected from the places any version defines; one found where
    its version does not put it is still used, with a warning.
    """
    version = header.get("version") or ""
    details["playready_header_version"] = safe_text(version, 16)
    if version not in HEADER_VERSIONS:
        warnings.add(f"WRMHEADER version {safe_text(version, 16)!r} is not 4.0 to 4.3")
    data = child(header, "DATA")
    if data is None:
        raise invalid(DRM, "the WRMHEADER has no DATA")
    protect = child(data, "PROTECTINFO")
    algids: list[str] = []
    places: set[str] = set()
    for kid in children(data, "KID"):
        places.add("4.0.0.0")
        key_ids.add(decode_key_id(text_of(kid) or "", "a WRMHEADER KID"))
    for kid in children(protect, "KID"):
        places.add("4.1.0.0")
        _kid_attributes(kid, key_ids, algids)
    for kids in children(protect, "KIDS"):
        for kid in children(kids, "KID"):
            places.add("4.2.0.0/4.3.0.0")
            _kid_attributes(kid, key_ids, algids)
    expected = version if version in ("4.0.0.0", "4.1.0.0") else "4.2.0.0/4.3.0.0"
    if version in HEADER_VERSIONS and places - {expected}:
        warnings.add(f"key ids found where WRMHEADER {version} does not put them")
    algid = text_of(child(protect, "ALGID"))
    if algid:
        algids.append(algid)
    distinct = list(dict.fromkeys(safe_text(a, 16) for a in algids))
    if distinct:
        details["playready_algid"] = ",".join(distinct)
        scheme = _PROTECTION_SCHEMES.get(distinct[0])
        if scheme:
            details["protection_scheme"] = scheme
        if len(distinct) > 1:
            warnings.add("the key ids name different ALGIDs")
    if protect is not None and protect.get("LICENSEREQUESTED") is not None:
        details["playready_license_requested"] = protect.get("LICENSEREQUESTED") == "true"
    for name, key in (("LA_URL", "playready_la_url"), ("DS_ID", "playready_ds_id")):
        value = text_of(child(data, name))
        if value:
            details[key] = safe_text(value, 256)


def _kid_attributes(kid: ET.Element, key_ids: KeyIds, algids: list[str]) -> None:
    key_ids.add(decode_key_id(kid.get("VALUE") or "", "a WRMHEADER KID VALUE"))
    if kid.get("ALGID"):
        algids.append(kid.get("ALGID") or "")


def _custom_data(element: ET.Element) -> str:
    """The custom data as the application set it: text, or the markup of child elements."""
    parts = [element.text or ""]
    for item in element:
        parts.append(ET.tostring(item, encoding="unicode"))
    text = "".join(parts).strip()
    if len(text) > MAX_CUSTOM_DATA:
        raise invalid(DRM, f"the CustomData is longer than {MAX_CUSTOM_DATA} characters")
    return text
