"""job.addresses: what an address is, in every spelling a URL's host can give it."""

from __future__ import annotations

import ipaddress

import pytest
from notraining_agent.job.addresses import (
    address_refusal,
    carried_ipv4,
    legacy_ipv4,
    normalise_host,
    parse_literal,
)


@pytest.mark.parametrize(
    ("address", "word"),
    [
        ("127.0.0.1", "loopback"),
        ("10.0.0.1", "private"),
        ("172.16.5.4", "private"),
        ("192.168.0.1", "private"),
        ("169.254.1.1", "link-local"),
        ("224.0.0.1", "multicast"),
        ("0.0.0.0", "unspecified"),
        ("100.64.0.1", "not a public"),
        ("240.0.0.1", "private"),
        ("::1", "loopback"),
        ("fe80::1", "link-local"),
        ("fc00::1", "private"),
        ("::ffff:127.0.0.1", "loopback"),
        ("::ffff:10.0.0.1", "private"),
        ("2002:7f00:1::", "loopback"),
        ("64:ff9b::a00:1", "private"),
        ("ff02::1", "multicast"),
    ],
)
def test_address_refusal(address: str, word: str) -> None:
    """Every non-public address kind is named, including IPv4 hidden in IPv6."""
    reason = address_refusal(ipaddress.ip_address(address))
    assert reason is not None and word in reason


@pytest.mark.parametrize(
    "address", ["8.8.8.8", "1.1.1.1", "2001:4860:4860::8888", "::ffff:8.8.8.8"]
)
def test_public_addresses_pass(address: str) -> None:
    """Public unicast addresses, mapped ones too, are not refused."""
    assert address_refusal(ipaddress.ip_address(address)) is None


@pytest.mark.parametrize(
    ("host", "address"),
    [
        ("2130706433", "127.0.0.1"),
        ("0177.0.0.1", "127.0.0.1"),
        ("0x7f.1", "127.0.0.1"),
        ("10.1", "10.0.0.1"),
        ("169.254.43518", "169.254.169.254"),
    ],
)
def test_legacy_spellings_read_as_inet_aton_reads_them(host: str, address: str) -> None:
    """What the C resolver would connect to, whatever the dotted-quad parser thinks."""
    assert legacy_ipv4(host) == ipaddress.IPv4Address(address)


@pytest.mark.parametrize("host", ["example.com", "1.2.3.4.5", "0x", "12ab", "1..2"])
def test_names_are_not_legacy_spellings(host: str) -> None:
    assert legacy_ipv4(host) is None


@pytest.mark.parametrize(
    ("host", "carried"),
    [
        ("::ffff:169.254.169.254", "169.254.169.254"),
        ("64:ff9b::a9fe:a9fe", "169.254.169.254"),
        ("2002:a9fe:a9fe::", "169.254.169.254"),
        ("2001:db8::1", None),
        ("example.com", None),
    ],
)
def test_ipv4_carried_inside_ipv6(host: str, carried: str | None) -> None:
    expected = ipaddress.IPv4Address(carried) if carried else None
    assert carried_ipv4(host) == expected


def test_a_scoped_ipv6_address_is_refused() -> None:
    address = ipaddress.IPv6Address("fe80::1%eth0")
    assert address_refusal(address) == "a scoped (zone-id) IPv6 address"


@pytest.mark.parametrize(
    ("host", "normal"),
    [("Example.COM.", "example.com"), ("[::1]", "::1"), (" metadata. ", "metadata")],
)
def test_hosts_are_compared_in_one_form(host: str, normal: str) -> None:
    assert normalise_host(host) == normal
    assert parse_literal(normalise_host("[::1]")) == ipaddress.IPv6Address("::1")
