"""FairPlay challenges: the SPC raw, as an ``spc=`` form, or as JSON ``{"spc": ...}``.

The SPC itself is encrypted to the key server and opaque here; we read its
version (the first four bytes, 1 or 2) and the hash of the FPS certificate the
client encrypted to, and normalize every framing to the raw SPC. The content
id comes from the request (an ``skd://`` key URI or asset id, read by a
configurable convention: :data:`GENERIC`, or one a vendor package registers) or
else from the form's ``assetId``.

SPC layout (Apple FPS): version (4), reserved (4), IV (16), wrapped key (128),
certificate hash (20), payload length (4), payload.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
import struct
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import unquote

from proxy.challenge.common import KeyIds, Warnings, invalid, safe_text
from proxy.errors import ProxyError, Reason
from proxy.model import ChallengeInfo, DrmSystem, RequestType

DRM = "FairPlay"
SPC_HEADER_SIZE = 176
_CERTIFICATE_HASH = slice(152, 172)
SPC_VERSIONS = (1, 2)
#: Most form fields read (spc, assetId and a few more).
MAX_FORM_FIELDS = 8
#: Longest content id or asset id accepted.
MAX_CONTENT_ID = 1024
#: A key id written as a GUID.
GUID = re.compile(r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$")


@dataclass(slots=True)
class ContentId:
    """A content id read by a convention, with the key id and IV it gives, if any."""

    content_id: str
    key_id: bytes | None = None
    iv: bytes | None = None
    facts: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class ContentIdConvention:
    """How a FairPlay key URI (``skd://...``) or asset id names the content.

    The core knows :data:`GENERIC`; a vendor package registers its own
    (``VendorSpec.fairplay_conventions``), and ``[challenge.fairplay]
    content_id_convention`` selects one by name.

    :ivar name: what ``content_id_convention`` selects.
    :ivar read: reads the text, ``skd://`` removed, into a :class:`ContentId`;
        raises ``ValueError`` (a short reason) when the text breaks the convention.
    :ivar summary: what it reads, for docs and error messages.
    """

    name: str
    read: Callable[[str], ContentId]
    summary: str = ""


def _read_generic(bare: str) -> ContentId:
    path, sep, query = bare.partition("?")
    content_id = query if sep and query else path.rstrip("/").rpartition("/")[2]
    if not content_id:
        raise ValueError("the key URI names no content")
    candidate = content_id
    for prefix in ("kid=", "KID="):
        candidate = candidate.removeprefix(prefix)
    key_id = uuid.UUID(candidate).bytes if GUID.match(candidate) else None
    return ContentId(content_id, key_id)


#: Azure Media Services, MK.IO and most players: the part after ``?`` if any, else the
#: last path segment; a GUID there (or in ``kid=``) gives a key id.
GENERIC = ContentIdConvention(
    "generic",
    _read_generic,
    "the part after `?`, else the last path segment; a GUID there (or `kid=<GUID>`) "
    "gives the key id",
)


def looks_like_fairplay(body: bytes) -> bool:
    """A cheap sniff: an SPC (version 1 or 2), an ``spc=`` form, or JSON naming ``spc``."""
    if body[:4] in (b"\x00\x00\x00\x01", b"\x00\x00\x00\x02"):
        return True
    if body[:4] == b"spc=" or (body[:1].isalpha() and b"&spc=" in body[:4096]):
        return True
    head = body[:256].lstrip()
    return head.startswith(b"{") and b'"spc"' in body


def _b64(text: str, what: str) -> bytes:
    """Standard or URL-safe base64, whitespace ignored, padding optional."""
    compact = "".join(text.split()).replace("-", "+").replace("_", "/")
    compact += "=" * (-len(compact) % 4)
    try:
        return base64.b64decode(compact, validate=True)
    except (binascii.Error, ValueError):
        raise invalid(DRM, f"the {what} is not base64") from None


def _form(body: bytes, warnings: Warnings) -> tuple[bytes, str | None]:
    """The SPC and asset id of an ``spc=<base64>[&assetId=<id>]`` form.

    Players often leave the base64 un-escaped, so a ``+`` in ``spc`` is a plus,
    not a space (base64 has no spaces). A bare field with no ``=`` after the
    SPC is taken as the asset id (castLabs' ``spc=...&<contentId>`` form).
    """
    try:
        text = body.decode("ascii")
    except UnicodeDecodeError:
        raise invalid(DRM, "the spc= form is not ASCII") from None
    fields = text.split("&")
    if len(fields) > MAX_FORM_FIELDS:
        raise invalid(DRM, f"the spc= form has more than {MAX_FORM_FIELDS} fields")
    spc: bytes | None = None
    asset_id: str | None = None
    for item in fields:
        name, sep, value = item.partition("=")
        if name == "spc" and sep:
            if spc is not None:
                raise invalid(DRM, "the form holds two spc fields")
            try:
                value = unquote(value, errors="strict")
            except UnicodeDecodeError:
                raise invalid(DRM, "the spc field is not base64") from None
            spc = _b64(value.replace(" ", "+"), "spc field")
        elif name in ("assetId", "asset_id") and sep:
            asset_id = unquote(value.replace("+", " "), errors="replace")
        elif not sep and name and asset_id is None:
            asset_id = unquote(name, errors="replace")
        elif name:
            warnings.add(f"form field {safe_text(name, 32)!r} ignored")
    if spc is None:
        raise invalid(DRM, "the form holds no spc field")
    return spc, asset_id


def _json(body: bytes, warnings: Warnings) -> tuple[bytes, str | None]:
    """The SPC and asset id of a JSON ``{"spc": "<base64>", "assetId": ...}`` body."""
    try:
        doc = json.loads(body.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError):
        raise invalid(DRM, "the JSON body is not UTF-8 JSON") from None
    if not isinstance(doc, dict):
        raise invalid(DRM, "the JSON body is not an object")
    spc = doc.get("spc")
    if not isinstance(spc, str):
        raise invalid(DRM, "the JSON body holds no spc string")
    asset_id = None
    for name in ("assetId", "asset_id", "contentId", "content_id"):
        value = doc.get(name)
        if isinstance(value, str) and value:
            asset_id = value
            break
    unknown = [n for n in doc if n not in ("spc", "assetId", "asset_id", "contentId", "content_id")]
    for name in unknown[:4]:
        warnings.add(f"JSON member {safe_text(str(name), 32)!r} ignored")
    return _b64(spc, "spc member"), asset_id


def read_content_id(text: str, convention: ContentIdConvention = GENERIC) -> ContentId:
    """Read a FairPlay key URI or asset id by ``convention``.

    :raises ValueError: when the text does not follow the convention (the
        caller picks the reason code: the request's or the challenge's fault).
    """
    if not text or len(text) > MAX_CONTENT_ID:
        raise ValueError(f"a content id is 1 to {MAX_CONTENT_ID} characters")
    if not text.isprintable():
        raise ValueError("the content id holds unprintable characters")
    bare = text[6:] if text[:6].lower() == "skd://" else text
    found = convention.read(bare)
    found.facts = {"fairplay_key_uri": text, **found.facts}
    return found


def parse_fairplay(
    body: bytes,
    *,
    content_id: str | None = None,
    convention: ContentIdConvention = GENERIC,
) -> ChallengeInfo:
    """Read a FairPlay challenge in any of its three framings.

    :param content_id: the request's content id (a key URI or asset id), if any;
        it wins over an ``assetId`` in the body.
    :param convention: how to read the content id.
    :raises ProxyError: CHALLENGE_INVALID when the body is unreadable;
        REQUEST_INVALID when the request's content id breaks the convention.
    """
    warnings = Warnings()
    details: dict[str, Any] = {}
    if body[:1].isalpha():
        spc, asset_id = _form(body, warnings)
        details["fairplay_framing"] = "form"
    elif body.lstrip()[:1] == b"{":
        spc, asset_id = _json(body, warnings)
        details["fairplay_framing"] = "json"
    else:
        spc, asset_id = body, None
        details["fairplay_framing"] = "raw"
    _check_spc(spc, warnings, details)
    if asset_id is not None:
        details["fairplay_asset_id"] = asset_id
    key_ids = KeyIds(DRM)
    found: ContentId | None = None
    if content_id:
        try:
            found = read_content_id(content_id, convention)
        except ValueError as exc:
            raise ProxyError(
                Reason.REQUEST_INVALID, f"content_id: {exc}", field="content_id"
            ) from None
    elif asset_id:
        try:
            found = read_content_id(asset_id, convention)
        except ValueError as exc:
            raise invalid(DRM, f"assetId: {exc}") from None
    if found is not None:
        details.update(found.facts)
        if found.key_id is not None:
            key_ids.add(found.key_id)
        if found.iv is not None:
            details["fairplay_iv"] = found.iv
    else:
        warnings.add("no content id: pass content_id (the skd:// key URI or asset id)")
    return ChallengeInfo(
        drm_system=DrmSystem.FAIRPLAY,
        request_type=RequestType.NEW,
        payload=spc,
        key_ids=key_ids.result(),
        content_id=found.content_id if found else None,
        client={"spc_version": str(details["fairplay_spc_version"])},
        warnings=warnings.result(),
        details=details,
    )


def _check_spc(spc: bytes, warnings: Warnings, details: dict[str, Any]) -> None:
    if spc[:2] == b"\x30\x82":
        raise invalid(DRM, "this is a certificate, not an SPC")
    if len(spc) < SPC_HEADER_SIZE:
        raise invalid(DRM, f"an SPC is at least {SPC_HEADER_SIZE} bytes")
    (version,) = struct.unpack_from(">I", spc, 0)
    if version not in SPC_VERSIONS:
        raise invalid(DRM, f"SPC version {version} is not 1 or 2")
    details["fairplay_spc_version"] = version
    details["fairplay_certificate_hash"] = spc[_CERTIFICATE_HASH].hex()
    (payload_length,) = struct.unpack_from(">I", spc, SPC_HEADER_SIZE - 4)
    if payload_length != len(spc) - SPC_HEADER_SIZE:
        warnings.add("the SPC payload length does not match its size")
