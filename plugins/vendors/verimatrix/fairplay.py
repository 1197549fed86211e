"""Verimatrix's FairPlay key URIs: the content id is what follows ``skd://``, up to any ``?``.

It is also the token's ``sub`` (:func:`proxy.fairplay_content_id`); it gives no key id.
"""

from __future__ import annotations

from proxy import ContentId, ContentIdConvention


def read_key_uri(bare: str) -> ContentId:
    """The content id a Verimatrix key URI names; ``ValueError`` when it names none."""
    content_id = bare.partition("?")[0]
    if not content_id:
        raise ValueError("the key URI names no content")
    return ContentId(content_id)


CONVENTION = ContentIdConvention(
    "verimatrix", read_key_uri, "strip `skd://` and any `?query`; gives no key id"
)
