"""The HTTP exchange between the core and a vendor, as plain values adapters build and read."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field


@dataclass(slots=True)
class UpstreamRequest:
    """An HTTP request for the core to send to a vendor."""

    url: str
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)
    method: str = "POST"


@dataclass(slots=True)
class UpstreamResponse:
    """A vendor's HTTP answer, read completely (within the size limit)."""

    status: int
    headers: Mapping[str, str]
    body: bytes


__all__ = ["UpstreamRequest", "UpstreamResponse"]
