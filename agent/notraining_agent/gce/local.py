"""Who we are when no metadata server answers: local mode, from this machine alone.

Nothing here sends a packet: the default route comes from ``/proc/net/route`` and the
interface's address from the ``SIOCGIFADDR`` ioctl (a socket is opened, never used).
Anything unreadable falls back to loopback, since local mode must always start.
"""

from __future__ import annotations

import fcntl
import logging
import socket
import struct
from pathlib import Path

from notraining_agent.gce import InstanceInfo

log = logging.getLogger(__name__)

ROUTE_TABLE = Path("/proc/net/route")
FALLBACK_IP = "127.0.0.1"
_SIOCGIFADDR = 0x8915  # linux/sockios.h
_RTF_UP = 0x1
_IFNAMSIZ = 16


def default_route_interface(route_table: Path = ROUTE_TABLE) -> str | None:
    """The interface of the default IPv4 route with the lowest metric, if there is one."""
    try:
        lines = route_table.read_text().splitlines()[1:]
    except OSError:
        return None
    best: tuple[int, str] | None = None
    for line in lines:
        fields = line.split()
        if len(fields) < 7 or fields[1] != "00000000":
            continue
        try:
            flags, metric = int(fields[3], 16), int(fields[6])
        except ValueError:
            continue
        if flags & _RTF_UP and (best is None or metric < best[0]):
            best = (metric, fields[0])
    return best[1] if best else None


def interface_address(interface: str) -> str | None:
    """The IPv4 address of ``interface``, or None when it has none (or does not exist)."""
    request = struct.pack("256s", interface.encode()[: _IFNAMSIZ - 1])
    try:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
            answer = fcntl.ioctl(sock.fileno(), _SIOCGIFADDR, request)
    except OSError:
        return None
    # struct ifreq: 16 bytes of name, then a sockaddr_in whose address starts at byte 4.
    return socket.inet_ntoa(answer[20:24])


def local_instance_info(*, route_table: Path = ROUTE_TABLE) -> InstanceInfo:
    """This machine as an instance: hostname for name, default-route address for IP."""
    name = socket.gethostname() or "localhost"
    interface = default_route_interface(route_table)
    address = interface_address(interface) if interface else None
    if address is None:
        log.debug("No default-route address found; using %s", FALLBACK_IP)
    return InstanceInfo(
        name=name,
        instance_id=None,
        project=None,
        zone=None,
        internal_ip=address or FALLBACK_IP,
        external_ip=None,
        hostname=name,
        on_gce=False,
    )
