"""KeyOS FairPlay key URIs: ``skd://<asset id>[/...]``; the asset id is the URI's host part.

THEOplayer's KeyOS web sample sends the ``skd://`` URI's host part as ``assetId``
(its iOS sample takes the text after ``?`` instead: VENDOR_FACTS 12.5, UNVERIFIED
which KeyOS means). A GUID there gives the key id.
"""

from __future__ import annotations

import re
import uuid

from proxy import ContentId, ContentIdConvention

_GUID = re.compile(r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$")
_HOST_END = re.compile(r"[/?#]")


def asset_id(value: str | None) -> str | None:
    """The ``assetId`` KeyOS takes, from a key URI or a bare id: the host part, without
    ``skd://``."""
    if not value:
        return None
    bare = value[6:] if value[:6].lower() == "skd://" else value
    return _HOST_END.split(bare, maxsplit=1)[0] or None


def read_key_uri(bare: str) -> ContentId:
    """The asset id (and key id, when it is a GUID) a KeyOS key URI names."""
    found = asset_id(bare)
    if not found:
        raise ValueError("a KeyOS key URI is skd://<asset id>")
    return ContentId(found, uuid.UUID(found).bytes if _GUID.match(found) else None)


CONVENTION = ContentIdConvention(
    "keyos",
    read_key_uri,
    "`skd://<asset id>[/...]`: content id = the host part (THEOplayer's KeyOS web sample); "
    "a GUID gives the key id",
)
