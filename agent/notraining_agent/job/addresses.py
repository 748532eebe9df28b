"""What an address is, in every spelling a URL's host can give it (contract 5).

Pure functions, no DNS: :mod:`.urlguard` decides with them whether a host may be
fetched, at posting time and again at connect time.
"""

from __future__ import annotations

import ipaddress
import re
import socket
from typing import TypeAlias

IPAddress: TypeAlias = ipaddress.IPv4Address | ipaddress.IPv6Address

_LEGACY_IPV4 = re.compile(r"^(0x[0-9a-f]*|[0-9]+)(\.(0x[0-9a-f]*|[0-9]+)){0,3}$")
_NAT64 = (ipaddress.ip_network("64:ff9b::/96"), ipaddress.ip_network("64:ff9b:1::/48"))


def address_refusal(address: IPAddress) -> str | None:
    """Why ``address`` is not a public unicast address, or None when it is."""
    if isinstance(address, ipaddress.IPv6Address):
        if address.scope_id:
            return "a scoped (zone-id) IPv6 address"
        embedded = embedded_ipv4(address)
        if embedded is not None:
            reason = address_refusal(embedded)
            return f"{reason} ({embedded} inside an IPv6 address)" if reason else None
    checks = (
        (address.is_unspecified, "an unspecified address"),
        (address.is_loopback, "a loopback address"),
        (address.is_link_local, "a link-local address"),
        (address.is_multicast, "a multicast address"),
        (address.is_private, "a private address"),
        (address.is_reserved, "a reserved address"),
        (not address.is_global, "not a public address"),
    )
    return next((reason for hit, reason in checks if hit), None)


def embedded_ipv4(address: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    """The IPv4 address a mapped, 6to4, Teredo or NAT64 IPv6 address carries."""
    if address.ipv4_mapped is not None:
        return address.ipv4_mapped
    if address.sixtofour is not None:
        return address.sixtofour
    if address.teredo is not None:
        return address.teredo[1]
    if any(address in net for net in _NAT64):
        return ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
    return None


def carried_ipv4(host: str) -> ipaddress.IPv4Address | None:
    """The IPv4 address an IPv6 literal carries (mapped, NAT64, 6to4, Teredo), else None."""
    literal = parse_literal(host)
    return embedded_ipv4(literal) if isinstance(literal, ipaddress.IPv6Address) else None


def parse_literal(host: str) -> IPAddress | None:
    """The address a host names literally (IPv6, dotted quad), else None; host is normalised."""
    try:
        return ipaddress.ip_address(host)
    except ValueError:
        return None


def legacy_ipv4(host: str) -> ipaddress.IPv4Address | None:
    """The address ``inet_aton`` would read from ``2130706433``, ``0177.1``, ``0x7f.1``..."""
    if not _LEGACY_IPV4.match(host):
        return None
    try:
        return ipaddress.IPv4Address(socket.inet_aton(host))
    except OSError:
        return None


def normalise_host(host: str) -> str:
    """Lower case, no brackets, no trailing dot: the form every comparison uses."""
    host = host.strip().lower()
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    return host[:-1] if host.endswith(".") else host
