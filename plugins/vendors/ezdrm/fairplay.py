"""EZDRM's FairPlay key URIs: ``skd://fps.ezdrm.com/;<KID GUID>``; the content id follows ``;``.

EZDRM's CPIX answer writes the key URI this way, and Bitmovin's and THEOplayer's iOS
samples take the text after ``;`` as the content id (VENDOR_FACTS 11.3, vector 11.6).
The generic convention (the last path segment) would read ``;<GUID>`` instead.
"""

from __future__ import annotations

import re
import uuid

from proxy import ContentId, ContentIdConvention, fairplay_content_id

_GUID = re.compile(r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$")


def content_id(value: str | None) -> str | None:
    """The content id EZDRM's FairPlay URL takes, from a key URI or a bare id: the text
    after the last ``;`` when there is one, else the id without ``skd://`` and ``?query``."""
    if not value:
        return None
    if ";" in value:
        return value.rpartition(";")[2] or None
    return fairplay_content_id(value)


def read_key_uri(bare: str) -> ContentId:
    """The content id (and key id, when it is a GUID) an EZDRM key URI names."""
    found = content_id(bare)
    if not found:
        raise ValueError("an EZDRM key URI is skd://fps.ezdrm.com/;<KID GUID>")
    key_id = uuid.UUID(found).bytes if _GUID.match(found) else None
    return ContentId(found, key_id)


CONVENTION = ContentIdConvention(
    "ezdrm",
    read_key_uri,
    "`skd://fps.ezdrm.com/;<KID GUID>`: content id = the text after `;` (without `;`: "
    "strip `skd://` and `?query`); a GUID gives the key id",
)
