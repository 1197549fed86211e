"""DRMtoday's FairPlay key URIs: ``skd://drmtoday?assetId=<asset>[&variantId=<variant>]``.

Players that integrate DRMtoday take the query after ``skd://drmtoday?`` as the
asset (VENDOR_FACTS 9.4); the content id is the ``assetId``, and ``variantId``
goes into the CRT beside it.
"""

from __future__ import annotations

from urllib.parse import parse_qs

from proxy import ContentId, ContentIdConvention


def read_key_uri(bare: str) -> ContentId:
    """The asset (and variant) a DRMtoday key URI names; ``ValueError`` when it names none."""
    host, _, query = bare.partition("?")
    if not query and "=" in host:
        query = host  # the asset id form alone: assetId=...&variantId=...
    fields = parse_qs(query, keep_blank_values=False, max_num_fields=8)
    asset = fields.get("assetId", [""])[0]
    if not asset:
        raise ValueError("a DRMtoday key URI is [skd://]drmtoday?assetId=<asset>[&variantId=<v>]")
    facts = {"drmtoday_asset_id": asset}
    variant = fields.get("variantId", [""])[0]
    if variant:
        facts["drmtoday_variant_id"] = variant
    return ContentId(asset, None, None, dict(facts))


CONVENTION = ContentIdConvention(
    "drmtoday",
    read_key_uri,
    "`[skd://]drmtoday?assetId=<asset>[&variantId=<variant>]`; content id = the asset id, "
    "the variant goes to the CRT",
)
