"""The end user's address: the socket peer, unless the peer is a trusted proxy.

Behind trusted proxies the client is the right-most address of the forwarding
header the proxies write (``server.forwarded_header``: ``X-Forwarded-For`` by
default, or RFC 7239 ``Forwarded``) that is not itself a trusted proxy. Every
hop appends on the right, so what lies left of the first untrusted address is
whatever the client chose to send, and is never believed. Only the configured
header is read: a proxy that appends to ``X-Forwarded-For`` passes a client's
own ``Forwarded`` header through untouched, so reading both would let the
client pick its address.

A request *originates from a trusted caller* when its peer is trusted and so
is every hop the forwarding header names; only then are the caller's own
claims about the end user (gRPC ``client`` fields) believed. A peer is trusted
by its address (``server.trusted_proxies``) or by the verified identity of its
client certificate (``server.trusted_callers``).
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Mapping
from dataclasses import dataclass
from urllib.parse import unquote

from proxy.cidr import CidrSet
from proxy.config import ServerConfig

#: Hops read from the right of a forwarding header; a longer chain is not believed past them.
MAX_HOPS = 32


def _canonical_fast(text: str) -> str | None:
    """The canonical form of a plain IPv4 or IPv6 address via ``inet_pton`` (ten times faster
    than ``ipaddress``); None for anything else (ports, brackets, zones, IPv4 inside IPv6)."""
    try:
        if ":" not in text:
            socket.inet_pton(socket.AF_INET, text)  # only canonical dotted quads pass
            return text
        packed = socket.inet_pton(socket.AF_INET6, text)
    except (OSError, ValueError):
        return None
    if int.from_bytes(packed[:12], "big") in (0, 0xFFFF):
        return None  # ::a.b.c.d and ::ffff:a.b.c.d: ipaddress decides how they read
    return socket.inet_ntop(socket.AF_INET6, packed)


def normalize_ip(text: str | None) -> str | None:
    """A canonical IP string (IPv4-mapped IPv6 shown as IPv4; brackets and ports removed), or None."""
    if not text:
        return None
    text = text.strip()
    fast = _canonical_fast(text)
    if fast is not None:
        return fast
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


def _header_values(headers: Mapping[str, str], name: str) -> list[str]:
    """Every value of a header, in order: proxies may add a new line instead of extending one."""
    getall = getattr(headers, "getall", None)
    if getall is not None:
        return [str(v) for v in getall(name, ())]
    value = headers.get(name)
    return [value] if value else []


class _UnclosedQuote(ValueError):
    """A header line ends inside a quoted string (or right after its escape character)."""


def _split_outside_quotes(text: str, separator: str) -> list[str]:
    """Split ``text`` on ``separator`` except inside RFC 9110 quoted strings.

    Raises :class:`_UnclosedQuote` when ``text`` ends inside a quoted string: where
    that string would have ended, and so what follows it, can't be known.
    """
    parts: list[str] = []
    current: list[str] = []
    quoted = escaped = False
    for char in text:
        if escaped:
            escaped = False
        elif quoted and char == "\\":
            escaped = True
        elif char == '"':
            quoted = not quoted
        elif char == separator and not quoted:
            parts.append("".join(current))
            current = []
            continue
        current.append(char)
    if quoted:
        raise _UnclosedQuote(text)
    parts.append("".join(current))
    return parts


def _unquote(value: str) -> str:
    value = value.strip()
    if len(value) >= 2 and value[0] == value[-1] == '"':
        inner = value[1:-1]
        out: list[str] = []
        escaped = False
        for char in inner:
            if escaped or char != "\\":
                out.append(char)
                escaped = False
            else:
                escaped = True
        return "".join(out)
    return value


def _forwarded_for(element: str) -> str | None:
    """The address in one ``Forwarded`` element's ``for=`` parameter, or None: absent,
    ``unknown``, obfuscated, or an element that does not read as RFC 7239 (a pair without
    ``=``, ``for`` given twice, an unclosed quote)."""
    address: str | None = None
    seen_for = False
    try:
        pairs = _split_outside_quotes(element, ";")
    except _UnclosedQuote:
        return None
    for pair in pairs:
        if not pair.strip():
            continue  # RFC 7239 allows empty pairs (``for=a;;proto=https``)
        name, sep, value = pair.partition("=")
        if not sep or not name.strip():
            return None
        if name.strip().lower() == "for":
            if seen_for:
                return None  # a parameter must not occur twice in one element
            seen_for = True
            address = normalize_ip(_unquote(value))
    return address


def _forwarded_line(line: str) -> list[str | None]:
    """The hops of one ``Forwarded`` header line; one unknown hop when the line ends inside
    a quoted string, since which of its elements a proxy appended can't be told."""
    try:
        elements = _split_outside_quotes(line, ",")
    except _UnclosedQuote:
        return [None]
    return [_forwarded_for(e) for e in elements if e.strip()]


def forwarded_chain(
    headers: Mapping[str, str], header: str = "x-forwarded-for"
) -> list[str | None]:
    """The hops a request claims to have passed, left (client) to right (nearest proxy).

    Each hop is a normalized IP, or None where the header names no readable
    address (``for=unknown``, an obfuscated identifier, garbage, a ``Forwarded``
    line that ends inside a quoted string). Header lines are read one by one. At most
    :data:`MAX_HOPS` hops are kept; a longer chain starts with a None.
    """
    values = _header_values(headers, header)
    if not values:
        return []
    hops: list[str | None] = []
    # Each line is read on its own: a quote the client leaves open in its own line must
    # not swallow the element a trusted proxy appended as a line of its own.
    for line in values:
        if header == "forwarded":
            hops.extend(_forwarded_line(line))
        else:
            hops.extend(normalize_ip(p) for p in line.split(",") if p.strip())
    if len(hops) > MAX_HOPS:
        return [None, *hops[-MAX_HOPS:]]
    return hops


def trusted_set(server: ServerConfig) -> CidrSet:
    """``server.trusted_proxies`` compiled (once per :class:`ServerConfig`)."""
    return server.trusted_set


@dataclass(frozen=True, slots=True)
class ResolvedClient:
    """Who sent a request.

    :ivar ip: the end user's address, or None when it can't be known (a unix
        socket peer, or a trusted proxy that names an unknown hop).
    :ivar peer_trusted: the socket peer is a trusted proxy or caller.
    :ivar origin_trusted: the request originates from a trusted caller: the
        peer and every hop it vouches for are trusted.
    """

    ip: str | None
    peer_trusted: bool
    origin_trusted: bool


def resolve_client(
    peer: str | None,
    headers: Mapping[str, str],
    server: ServerConfig,
    *,
    trusted_caller: bool = False,
) -> ResolvedClient:
    """Resolve the end user's address from the peer and the configured forwarding header.

    A forwarding header from an untrusted peer is ignored; from a trusted one,
    the chain is walked from the right past trusted hops to the first
    untrusted address. ``trusted_caller``: the peer proved a trusted identity
    (``server.trusted_callers``) with its client certificate, so it is trusted
    whatever its address.
    """
    trusted = trusted_set(server)
    if not trusted_caller and (peer is None or peer not in trusted):
        return ResolvedClient(peer, False, False)
    client: str | None = peer
    for hop in reversed(forwarded_chain(headers, server.forwarded_header)):
        if hop is None:
            # A trusted proxy vouches for a hop it could not name: the client is unknown,
            # never the proxy itself (an allow-list holding the proxy would admit anyone).
            return ResolvedClient(None, True, False)
        client = hop
        if hop not in trusted:
            return ResolvedClient(hop, True, False)
    return ResolvedClient(client, True, True)


def resolve_client_ip(
    peer: str | None,
    headers: Mapping[str, str],
    server: ServerConfig,
    *,
    trusted_caller: bool = False,
) -> tuple[str | None, bool]:
    """``(client ip, request originates from a trusted caller)``; see :func:`resolve_client`."""
    resolved = resolve_client(peer, headers, server, trusted_caller=trusted_caller)
    return resolved.ip, resolved.origin_trusted


__all__ = [
    "MAX_HOPS",
    "ResolvedClient",
    "forwarded_chain",
    "grpc_peer_ip",
    "normalize_ip",
    "resolve_client",
    "resolve_client_ip",
    "trusted_set",
]
