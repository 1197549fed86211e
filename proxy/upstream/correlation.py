"""The vendor's own name for one exchange, read from its response headers.

The proxy sends its request id to the vendor (``correlation_header``); many
vendors answer with an id of their own, which is what their support desk asks
for. The first of the vendor's declared headers (``VendorSpec.correlation_headers``),
then of the common request-id headers, that the answer carries is kept as
``vendor_correlation_id``: in the license's ``vendor_metadata``, or in a
refusal's error metadata, and so in the decision log.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping

#: The key the id is kept under, in ``vendor_metadata`` and error metadata.
VENDOR_CORRELATION_KEY = "vendor_correlation_id"

#: Response headers that name a request by common convention (Azure's ``x-ms-request-id``
#: among them), tried after the vendor's own.
COMMON_HEADERS: tuple[str, ...] = (
    "x-ms-request-id",
    "x-request-id",
    "x-correlation-id",
    "request-id",
)

_SAFE = re.compile(r"^[\x21-\x7e]{1,128}$")


def vendor_correlation_id(
    headers: Mapping[str, str], declared: Iterable[str], ours: str
) -> str | None:
    """The vendor's id for this exchange, or None; an echo of ``ours`` (our own request id
    sent back) is no vendor id, and neither is a value with spaces, controls or over 128
    characters."""
    for names in (declared, COMMON_HEADERS):
        for name in names:
            value = headers.get(name)
            if value and value != ours and _SAFE.match(value):
                return value
    return None


def keep_correlation_id(
    metadata: dict[str, str], headers: Mapping[str, str], declared: Iterable[str], ours: str
) -> None:
    """Put the vendor's id in ``metadata`` (unless the adapter put one there already)."""
    if VENDOR_CORRELATION_KEY in metadata:
        return
    found = vendor_correlation_id(headers, declared, ours)
    if found is not None:
        metadata[VENDOR_CORRELATION_KEY] = found


__all__ = [
    "COMMON_HEADERS",
    "VENDOR_CORRELATION_KEY",
    "keep_correlation_id",
    "vendor_correlation_id",
]
