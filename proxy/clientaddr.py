"""The end user's address: the socket peer, unless the peer is a trusted proxy.

Behind trusted proxies the client is the right-most address of RFC 7239
``Forwarded`` (or, without it, ``X-Forwarded-For``) that is not itself a
trusted proxy: every hop appends on the right, so entries left of the first
untrusted one are whatever the client chose to send and are never believed.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Mapping
from urllib.parse import unquote

from proxy.config import ServerConfig

_FORWARDED_FOR = re.compile(r'for\s*=\s*("?)([^;,"]*)\1', re.IGNORECASE)
MAX_HOPS = 32


def normalize_ip(text: str | None) -> str | None:
    """A canonical IP string (IPv4-mapped IPv6 shown as IPv4; brackets and ports removed), or None."""
    if not text:
        return None
    text = text.strip()
    if text.startswith("["):
        text = text[1:].partition("]")[0]
    elif text.count(":") == 1:  # IPv4 with a port
        text = text.partition(":")[0]
    text = text.partition("%")[0]  # zone id
    try:
        ip = ipaddress.ip_address(text)
    except ValueError:
        return None
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        return str(ip.ipv4_mapped)
    return str(ip)


def grpc_peer_ip(peer: str | None) -> str | None:
    """The IP of a gRPC peer string (``ipv4:1.2.3.4:5``, ``ipv6:[::1]:5``), or None (e.g. unix)."""
    if not peer:
        return None
    kind, _, rest = peer.partition(":")
    if kind not in ("ipv4", "ipv6"):
        return None
    rest = unquote(rest)
    if kind == "ipv4":
        return normalize_ip(rest.rpartition(":")[0] or rest)
    return normalize_ip(rest if rest.startswith("[") else rest.rpartition(":")[0])


def forwarded_chain(headers: Mapping[str, str]) -> list[str]:
    """The hops a request claims to have passed, left (client) to right (nearest proxy)."""
    forwarded = headers.get("forwarded")
    if forwarded:
        return [m[1] for m in _FORWARDED_FOR.findall(forwarded)][-MAX_HOPS:]
    xff = headers.get("x-forwarded-for")
    if xff:
        return [part.strip() for part in xff.split(",")][-MAX_HOPS:]
    return []


def resolve_client_ip(
    peer: str | None, headers: Mapping[str, str], server: ServerConfig
) -> tuple[str | None, bool]:
    """``(client ip, peer is trusted)``: the peer itself unless it is a trusted proxy."""
    if not server.is_trusted(peer):
        return peer, False
    client = peer
    for hop in reversed(forwarded_chain(headers)):
        ip = normalize_ip(hop)
        if ip is None:
            break  # an unreadable hop: keep the last address a trusted proxy vouched for
        client = ip
        if not server.is_trusted(ip):
            break
    return client, True
