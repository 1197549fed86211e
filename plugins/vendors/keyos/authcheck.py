"""Checks a KeyOS Authentication XML the way VENDOR_FACTS 12.2-12.4 describe it (the emulator's
side; written independently of the adapter that builds one).

:func:`read_authentication_xml` takes the header value apart (base64, the root, the
exact ``<Data>`` text and the signature); :func:`check_data` judges ``Data``'s
elements and values and returns what they say; :func:`check_authentication_xml`
does both and verifies the signature with the registered key. Parsing is defusedxml's
(no DTDs, no entities).
"""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any
from xml.etree.ElementTree import Element, canonicalize

import defusedxml.ElementTree as SafeET
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from defusedxml import DefusedXmlException

HEX32 = re.compile(r"^[0-9a-fA-F]{32}$")
GUID = re.compile(r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$")
TIME = re.compile(r"^\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}(?:\.\d{1,3})?$")
KNOWN = frozenset(
    {
        "GenerationTime",
        "ExpirationTime",
        "UniqueId",
        "RSAPubKeyId",
        "WidevinePolicy",
        "WidevineContentKeySpec",
        "FairPlayPolicy",
        "License",
        "Policy",
        "Play",
        "KeyIDList",
        "Username",
    }
)
REQUIRED = ("GenerationTime", "ExpirationTime", "UniqueId", "RSAPubKeyId")
TRACK_TYPES = frozenset({"AUDIO", "SD", "HD", "UHD1", "UHD2"})
#: ``OPL`` children: the three video ones are seen in tokens; the two audio ones follow
#: their pattern (UNVERIFIED), accepted because the adapter's docs say it sends them.
OPL = frozenset(
    {
        "CompressedDigitalVideo",
        "UncompressedDigitalVideo",
        "AnalogVideo",
        "CompressedDigitalAudio",
        "UncompressedDigitalAudio",
    }
)
FLAGS = frozenset({"true", "false"})
DIGESTS = {"sha1": hashes.SHA1, "sha256": hashes.SHA256}
#: How far in the future a ``GenerationTime`` may be (clock skew).
SKEW = 300.0


class AuthXmlRefused(Exception):
    """The Authentication XML breaks the documented format; ``problems`` says how."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("; ".join(problems))
        self.problems = problems


def read_authentication_xml(value: str) -> tuple[str, Element, bytes]:
    """The exact ``<Data>…</Data>`` text, the ``Data`` element and the signature bytes."""
    try:
        text = base64.b64decode(value, validate=True).decode("utf-8")
    except (binascii.Error, ValueError):
        raise AuthXmlRefused(["the header is base64 of the UTF-8 Authentication XML"]) from None
    try:
        root = SafeET.fromstring(text)
    except (SafeET.ParseError, DefusedXmlException, ValueError):
        raise AuthXmlRefused(["the Authentication XML is not well-formed XML"]) from None
    if root.tag != "KeyOSAuthenticationXML" or [c.tag for c in root] != ["Data", "Signature"]:
        raise AuthXmlRefused(["the root KeyOSAuthenticationXML holds Data, then Signature"])
    start, end = text.find("<Data>"), text.rfind("</Data>")
    if start < 0 or end < 0 or text.count("<Data>") != 1:
        raise AuthXmlRefused(["Data is written <Data>…</Data>, once"])
    try:
        signature = base64.b64decode(root[1].text or "", validate=True)
    except (binascii.Error, ValueError):
        raise AuthXmlRefused(["Signature is base64"]) from None
    return text[start : end + len("</Data>")], root[0], signature


def _time(element: Element | None, problems: list[str]) -> float | None:
    if element is None or not TIME.match(element.text or ""):
        problems.append(f"{getattr(element, 'tag', 'a time')} is yyyy-MM-dd HH:mm:ss[.fff]")
        return None
    text = element.text or ""
    fmt = "%Y-%m-%d %H:%M:%S.%f" if "." in text else "%Y-%m-%d %H:%M:%S"
    try:
        return datetime.strptime(text, fmt).replace(tzinfo=UTC).timestamp()
    except ValueError:
        problems.append(f"{element.tag} is no date")
        return None


def _int(element: Element | None, low: int, high: int, what: str, problems: list[str]) -> int:
    text = (element.text or "") if element is not None else ""
    if not text.isdigit() or not low <= int(text) <= high:
        problems.append(f"{what} is an integer from {low} to {high}")
        return 0
    return int(text)


def _only(element: Element, children: set[str] | frozenset[str], problems: list[str]) -> None:
    seen = [c.tag for c in element]
    unknown = sorted(set(seen) - children)
    if unknown:
        problems.append(f"{element.tag} holds no {', '.join(unknown)}")
    if len(seen) != len(set(seen)):
        problems.append(f"{element.tag} repeats a child")


def _flags(element: Element, names: set[str], problems: list[str]) -> dict[str, bool]:
    found = {}
    for name, value in element.attrib.items():
        if name not in names or value not in FLAGS:
            problems.append(f"{element.tag} has {sorted(names)} attributes, true or false")
        else:
            found[name] = value == "true"
    return found


def _widevine(data: Element, facts: dict[str, Any], problems: list[str]) -> None:
    policies = data.findall("WidevinePolicy")
    if len(policies) > 1:
        problems.append("one WidevinePolicy")
    for policy in policies:
        flags = _flags(policy, {"fl_CanPlay", "fl_CanPersist"}, problems)
        _only(policy, {"LicenseDuration"}, problems)
        doc: dict[str, Any] = {"can_play": flags.get("fl_CanPlay")}
        doc["can_persist"] = flags.get("fl_CanPersist")
        duration = policy.find("LicenseDuration")
        if duration is not None:
            doc["license_duration"] = _int(duration, 0, 2**31, "LicenseDuration", problems)
        facts["widevine"] = doc
    specs: dict[str, dict[str, Any]] = {}
    for spec in data.findall("WidevineContentKeySpec"):
        track = spec.get("TrackType", "")
        if track not in TRACK_TYPES or track in specs or set(spec.attrib) != {"TrackType"}:
            problems.append("each WidevineContentKeySpec names its own Widevine TrackType")
        _only(spec, {"SecurityLevel", "RequiredHDCP", "RequiredCGMS"}, problems)
        doc = {}
        level = spec.find("SecurityLevel")
        if level is not None:
            doc["security_level"] = _int(level, 1, 5, "SecurityLevel", problems)
        for name, pattern in (
            ("RequiredHDCP", r"^HDCP_[A-Z0-9_]+$"),
            ("RequiredCGMS", r"^[A-Z_]+$"),
        ):
            element = spec.find(name)
            if element is not None:
                if not re.match(pattern, element.text or ""):
                    problems.append(f"{name} is an upper-case name")
                doc[name] = element.text
        specs[track] = doc
    if specs:
        facts["widevine_specs"] = specs


def _playready(data: Element, facts: dict[str, Any], problems: list[str]) -> None:
    policies: dict[str, int] = {}
    for policy in data.findall("Policy"):
        _only(policy, {"MinimumSecurityLevel"}, problems)
        level = _int(
            policy.find("MinimumSecurityLevel"), 150, 3000, "MinimumSecurityLevel", problems
        )
        policies[policy.get("id", "")] = level
    plays: dict[str, dict[str, int]] = {}
    for play in data.findall("Play"):
        _only(play, {"OutputProtections"}, problems)
        levels: dict[str, int] = {}
        for opl in play.findall("OutputProtections/OPL"):
            _only(opl, OPL, problems)
            for child in opl:
                levels[child.tag] = _int(child, 100, 500, child.tag, problems)
        plays[play.get("id", "")] = levels
    licenses = []
    for element in data.findall("License"):
        if element.get("type") not in ("simple", "root", "leaf"):
            problems.append("License type is simple, root or leaf")
        _only(element, {"KeyId", "Policy", "Play"}, problems)
        doc: dict[str, Any] = {}
        key = element.findtext("KeyId")
        if key is not None:
            if not (GUID.match(key) or HEX32.match(key)):
                problems.append("License KeyId is a key id")
            doc["key_id"] = key.lower()
        for name, defined in (("Policy", policies), ("Play", plays)):
            reference = element.find(name)
            if reference is not None:
                ref = reference.findtext("Id") or ""
                if ref not in defined:
                    problems.append(f"License names a {name} that Data does not define")
                else:
                    doc[name.lower()] = defined[ref]
        licenses.append(doc)
    if licenses:
        facts["playready_licenses"] = licenses


def check_data(data: Element, now: float) -> tuple[dict[str, Any], list[str]]:
    """What ``Data`` says, and how it breaks the documented format (empty when it doesn't)."""
    problems: list[str] = []
    unknown = sorted({c.tag for c in data} - KNOWN)
    if unknown:
        problems.append(f"Data holds unknown elements: {', '.join(unknown)}")
    for name in REQUIRED:
        if len(data.findall(name)) != 1:
            problems.append(f"Data holds one {name}")
    generated = _time(data.find("GenerationTime"), problems)
    expires = _time(data.find("ExpirationTime"), problems)
    if generated is not None and expires is not None:
        if expires <= generated:
            problems.append("ExpirationTime comes after GenerationTime")
        if generated > now + SKEW:
            problems.append("GenerationTime is in the future")
        if expires <= now:
            problems.append("the Authentication XML has expired")
    unique_id = data.findtext("UniqueId") or ""
    if not (HEX32.match(unique_id) or GUID.match(unique_id)):
        problems.append("UniqueId is 32 hex characters or a GUID")
    key_hash = data.findtext("RSAPubKeyId") or ""
    if not HEX32.match(key_hash):
        problems.append("RSAPubKeyId is 32 hex characters")
    facts: dict[str, Any] = {"unique_id": unique_id, "rsa_pub_key_id": key_hash.lower()}
    _widevine(data, facts, problems)
    for policy in data.findall("FairPlayPolicy"):
        flags = _flags(policy, {"persistent"}, problems)
        _only(policy, {"HDCPEnforcement"}, problems)
        facts["fairplay"] = {"persistent": flags.get("persistent")}
    _playready(data, facts, problems)
    for listing in data.findall("KeyIDList"):
        keys = [k.text or "" for k in listing]
        if not keys or any(k.tag != "KeyID" for k in listing):
            problems.append("KeyIDList lists KeyID elements")
        if any(not (GUID.match(k) or HEX32.match(k)) for k in keys):
            problems.append("KeyID is a key id")
        facts["key_ids"] = [k.lower() for k in keys]
    username = data.findtext("Username")
    if username is not None:
        facts["username"] = username
    return facts, problems


def check_authentication_xml(
    value: str,
    keys: Mapping[str, rsa.RSAPublicKey],
    digest: str,
    signed_content: str,
    now: float,
) -> dict[str, Any]:
    """What a valid Authentication XML says; :class:`AuthXmlRefused` with every problem
    otherwise (the signature checked with the key its ``RSAPubKeyId`` names)."""
    data_text, data, signature = read_authentication_xml(value)
    facts, problems = check_data(data, now)
    key = {k.lower(): v for k, v in keys.items()}.get(facts["rsa_pub_key_id"])
    if key is None:
        problems.append("RSAPubKeyId names no key registered with this account")
    elif len(signature) != key.key_size // 8:
        problems.append("Signature is one RSA block of the registered key's size")
    else:
        signed = data_text if signed_content == "data" else canonicalize(xml_data=data_text)
        try:
            key.verify(signature, signed.encode("utf-8"), padding.PKCS1v15(), DIGESTS[digest]())
        except InvalidSignature:
            problems.append("the signature does not verify with the registered key")
    if problems:
        raise AuthXmlRefused(problems)
    return facts
