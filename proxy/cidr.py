"""Sets of IP networks compiled once into sorted, merged ranges: membership in O(log n).

An allow-list of ten thousand CIDRs costs a binary search over integers per
lookup, not a scan. IPv4-mapped IPv6 (``::ffff:192.0.2.1``) is the IPv4 address
it carries, in the addresses looked up and in the networks configured, so both
spellings match the same rule.
"""

from __future__ import annotations

import ipaddress
import socket
from bisect import bisect_right
from collections.abc import Iterable
from dataclasses import dataclass

IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

_MAPPED = ipaddress.IPv6Network("::ffff:0:0/96")


#: ``(version, integer)``: an address as the compiled sets compare it.
AddressKey = tuple[int, int]


def address_key(text: str | None) -> AddressKey | None:
    """The key of a textual address (IPv4-mapped IPv6 as IPv4), or None when unreadable.

    ``inet_pton`` parses in a fraction of ``ipaddress``'s time; it takes the
    canonical forms :func:`proxy.clientaddr.normalize_ip` writes (no port,
    brackets or zone), which is what a request's client address holds.
    """
    if not text:
        return None
    try:
        if ":" in text:
            value = int.from_bytes(socket.inet_pton(socket.AF_INET6, text), "big")
            if value >> 32 == 0xFFFF:
                return 4, value & 0xFFFFFFFF
            return 6, value
        return 4, int.from_bytes(socket.inet_pton(socket.AF_INET, text), "big")
    except (OSError, ValueError):
        return None


def parse_address(text: str | None) -> IPAddress | None:
    """An address from its text, IPv4-mapped IPv6 unwrapped to IPv4; None when unreadable."""
    if not text:
        return None
    try:
        ip = ipaddress.ip_address(text)
    except ValueError:
        return None
    return unmap(ip)


def unmap(ip: IPAddress) -> IPAddress:
    """The IPv4 address an IPv4-mapped IPv6 address carries; any other address as it is."""
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    return ip


def unmap_network(network: IPNetwork) -> IPNetwork:
    """An IPv6 network inside ``::ffff:0:0/96`` as the IPv4 network it covers; others unchanged.

    Wider IPv6 networks (``::/0``) are left IPv6 on purpose: an operator who
    writes ``::/0`` means "every IPv6 client", not "every client".
    """
    if isinstance(network, ipaddress.IPv6Network) and network.subnet_of(_MAPPED):
        low = int(network.network_address) & 0xFFFFFFFF
        return ipaddress.IPv4Network((low, network.prefixlen - 96))
    return network


def parse_network(text: str) -> IPNetwork:
    """A network from ``"10.0.0.0/8"``, ``"2001:db8::/32"`` or a bare address (a /32 or /128).

    Host bits must be zero (``10.0.0.1/8`` is refused: it is usually a typo).
    Raises ``ValueError`` with a short reason.
    """
    try:
        return unmap_network(ipaddress.ip_network(text.strip(), strict=True))
    except ValueError as exc:
        raise ValueError(f"{text!r} is not a CIDR or IP address ({exc})") from None


def _merged(ranges: list[tuple[int, int]]) -> tuple[list[int], list[int]]:
    starts: list[int] = []
    ends: list[int] = []
    for low, high in sorted(ranges):
        if ends and low <= ends[-1] + 1:
            ends[-1] = max(ends[-1], high)
        else:
            starts.append(low)
            ends.append(high)
    return starts, ends


@dataclass(frozen=True, slots=True)
class _Ranges:
    starts: list[int]
    ends: list[int]

    def __contains__(self, value: int) -> bool:
        index = bisect_right(self.starts, value) - 1
        return index >= 0 and value <= self.ends[index]


class CidrSet:
    """An immutable set of IPv4 and IPv6 networks with fast membership tests.

    :param networks: networks or their text forms.
    """

    __slots__ = ("_v4", "_v6", "size")

    def __init__(self, networks: Iterable[IPNetwork | str] = ()) -> None:
        v4: list[tuple[int, int]] = []
        v6: list[tuple[int, int]] = []
        size = 0
        for item in networks:
            network = parse_network(item) if isinstance(item, str) else unmap_network(item)
            low = int(network.network_address)
            high = int(network.broadcast_address)
            (v4 if network.version == 4 else v6).append((low, high))
            size += 1
        self._v4 = _Ranges(*_merged(v4))
        self._v6 = _Ranges(*_merged(v6))
        self.size = size

    def __bool__(self) -> bool:
        return self.size > 0

    def __len__(self) -> int:
        return self.size

    def contains_key(self, key: AddressKey | None) -> bool:
        """Membership of an :func:`address_key` (the fast path of the access rules)."""
        if key is None:
            return False
        return key[1] in (self._v4 if key[0] == 4 else self._v6)

    def __contains__(self, address: object) -> bool:
        if isinstance(address, str):
            return self.contains_key(address_key(address))
        if isinstance(address, ipaddress.IPv6Address):
            address = unmap(address)
        if isinstance(address, ipaddress.IPv4Address):
            return int(address) in self._v4
        if isinstance(address, ipaddress.IPv6Address):
            return int(address) in self._v6
        return False

    def __repr__(self) -> str:
        return f"CidrSet({self.size} networks)"


def read_network_file(path: str) -> list[IPNetwork]:
    """Networks from a file, one per line; ``#`` starts a comment, blank lines are skipped.

    Raises ``ValueError`` naming the line of the first unreadable entry, ``OSError``
    when the file can't be read.
    """
    networks = []
    with open(path, encoding="utf-8") as fh:
        for number, line in enumerate(fh, 1):
            text = line.partition("#")[0].strip()
            if not text:
                continue
            try:
                networks.append(parse_network(text))
            except ValueError as exc:
                raise ValueError(f"line {number}: {exc}") from None
    return networks


__all__ = [
    "AddressKey",
    "CidrSet",
    "IPAddress",
    "IPNetwork",
    "address_key",
    "parse_address",
    "parse_network",
    "read_network_file",
    "unmap",
    "unmap_network",
]
