"""Axinom's FairPlay key URIs: ``skd://<key id GUID>[:<IV, 32 hex digits>]``.

The content id is the key id's GUID, so the key URI alone says which key is
wanted (and with which IV).
"""

from __future__ import annotations

import re
import uuid

from proxy import ContentId, ContentIdConvention

_GUID = re.compile(r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$")
_IV_HEX = re.compile(r"^[0-9a-fA-F]{32}$")


def read_key_uri(bare: str) -> ContentId:
    """The key id (and IV) an Axinom key URI names; ``ValueError`` when it is not one."""
    guid, _, iv = bare.partition(":")
    if not _GUID.match(guid):
        raise ValueError("an Axinom key URI is [skd://]<key id GUID>[:<IV hex>]")
    if iv and not _IV_HEX.match(iv):
        raise ValueError("the IV of an Axinom key URI is 32 hex digits")
    key_id = uuid.UUID(guid)
    return ContentId(str(key_id), key_id.bytes, bytes.fromhex(iv) if iv else None)


CONVENTION = ContentIdConvention(
    "axinom",
    read_key_uri,
    "`[skd://]<key id GUID>[:<IV, 32 hex digits>]`; content id = the GUID, which gives "
    "the key id (and `fairplay_iv`)",
)
