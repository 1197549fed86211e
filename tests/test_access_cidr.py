"""Compiled CIDR sets: the same answers as a linear scan, IPv4-mapped forms included."""

from __future__ import annotations

import ipaddress

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from proxy.cidr import CidrSet, parse_network, read_network_file


def test_membership_v4_v6_and_mapped():
    cidrs = CidrSet(["10.0.0.0/8", "192.0.2.7", "2001:db8::/32", "::ffff:198.51.100.0/120"])
    assert "10.200.1.1" in cidrs
    assert "::ffff:10.200.1.1" in cidrs
    assert "192.0.2.7" in cidrs and "192.0.2.8" not in cidrs
    assert "2001:db8:1::1" in cidrs and "2001:db9::1" not in cidrs
    assert "198.51.100.20" in cidrs  # configured mapped, looked up plain
    assert "::ffff:198.51.100.20" in cidrs
    assert ipaddress.ip_address("10.0.0.1") in cidrs
    assert None not in cidrs and "garbage" not in cidrs
    assert len(cidrs) == 4 and bool(cidrs)
    assert not CidrSet()


def test_wide_ipv6_networks_do_not_swallow_ipv4():
    assert "203.0.113.1" not in CidrSet(["::/0"])
    assert "2001:db8::1" in CidrSet(["::/0"])


def test_overlapping_and_adjacent_networks_merge():
    cidrs = CidrSet(["10.0.0.0/25", "10.0.0.128/25", "10.0.0.64/26", "10.0.1.0/24"])
    for ip in ("10.0.0.0", "10.0.0.127", "10.0.0.128", "10.0.1.255"):
        assert ip in cidrs
    assert "10.0.2.0" not in cidrs and "9.255.255.255" not in cidrs


@pytest.mark.parametrize("bad", ["10.0.0.1/8", "10.0.0.0/33", "not-an-ip", "", "1.2.3.4/-1"])
def test_bad_networks_are_refused(bad):
    with pytest.raises(ValueError):
        parse_network(bad)


def test_network_files(tmp_path):
    path = tmp_path / "nets.txt"
    path.write_text("# office\n10.0.0.0/8  # comment\n\n2001:db8::/32\n")
    assert [str(n) for n in read_network_file(str(path))] == ["10.0.0.0/8", "2001:db8::/32"]
    path.write_text("10.0.0.0/8\n10.0.0.1/8\n")
    with pytest.raises(ValueError, match="line 2"):
        read_network_file(str(path))


_MAPPED_BASE = ipaddress.IPv6Address("::ffff:0:0")
_v4_net = st.tuples(st.integers(0, 2**32 - 1), st.integers(8, 32)).map(
    lambda t: ipaddress.IPv4Network((t[0], t[1]), strict=False)
)
_v6_net = st.tuples(st.integers(0, 2**128 - 1), st.integers(16, 128)).map(
    lambda t: ipaddress.IPv6Network((t[0], t[1]), strict=False)
)
_mapped_net = st.tuples(st.integers(0, 2**32 - 1), st.integers(104, 128)).map(
    lambda t: ipaddress.IPv6Network((int(_MAPPED_BASE) + t[0], t[1]), strict=False)
)
_v4 = st.integers(0, 2**32 - 1).map(ipaddress.IPv4Address)
_v6 = st.integers(0, 2**128 - 1).map(ipaddress.IPv6Address)


_MAPPED = ipaddress.IPv6Network("::ffff:0:0/96")


def _reference(ip, networks) -> bool:
    """A linear scan, with IPv4-mapped addresses and networks spelled as IPv4."""
    if ip.version == 6 and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    for net in networks:
        if net.version == 6 and net.subnet_of(_MAPPED):
            offset = int(net.network_address) - int(_MAPPED.network_address)
            net = ipaddress.IPv4Network((offset, net.prefixlen - 96))
        if ip.version == net.version and ip in net:
            return True
    return False


@settings(deadline=None, max_examples=200)
@given(
    networks=st.lists(st.one_of(_v4_net, _v6_net, _mapped_net), max_size=30),
    probes=st.lists(st.one_of(_v4, _v6), min_size=1, max_size=20),
)
def test_same_answers_as_a_linear_scan(networks, probes):
    cidrs = CidrSet(networks)
    for network in networks:
        probes.append(network.network_address)
        probes.append(network.broadcast_address)
        if network.version == 4:
            probes.append(ipaddress.IPv6Address("::ffff:" + str(network.network_address)))
    for ip in probes:
        assert (ip in cidrs) is _reference(ip, networks), (ip, networks)
