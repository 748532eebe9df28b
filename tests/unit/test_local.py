"""Local mode's identity: hostname and the default route's address, without a packet sent."""

from __future__ import annotations

import socket
from pathlib import Path
from typing import NoReturn

import pytest
from notraining_agent.gce.local import (
    default_route_interface,
    interface_address,
    local_instance_info,
)

HEADER = "Iface\tDestination\tGateway \tFlags\tRefCnt\tUse\tMetric\tMask\t\tMTU\tWindow\tIRTT\n"


def route_table(tmp_path: Path, *rows: tuple[str, str, str, int]) -> Path:
    """A /proc/net/route look-alike from (iface, destination, flags, metric) rows."""
    lines = [
        f"{iface}\t{dest}\t0102A8C0\t{flags}\t0\t0\t{metric}\t00000000\t0\t0\t0\n"
        for iface, dest, flags, metric in rows
    ]
    path = tmp_path / "route"
    path.write_text(HEADER + "".join(lines))
    return path


def test_default_route_with_lowest_metric_wins(tmp_path: Path) -> None:
    """Among up default routes the lowest metric is chosen; other routes are ignored."""
    table = route_table(
        tmp_path,
        ("eth9", "0002A8C0", "0001", 0),  # not a default route
        ("wlan0", "00000000", "0003", 600),
        ("eth0", "00000000", "0003", 100),
        ("down0", "00000000", "0002", 0),  # default, but not up
    )
    assert default_route_interface(table) == "eth0"


def test_no_default_route_or_unreadable_table(tmp_path: Path) -> None:
    """No default route, garbage lines or a missing file give None."""
    table = route_table(tmp_path, ("eth0", "0002A8C0", "0001", 0))
    assert default_route_interface(table) is None
    (tmp_path / "garbage").write_text(HEADER + "eth0 00000000 zz 0 0 0 x\nshort\n")
    assert default_route_interface(tmp_path / "garbage") is None
    assert default_route_interface(tmp_path / "absent") is None


def test_interface_address_by_ioctl() -> None:
    """The loopback interface reads 127.0.0.1; an unknown interface reads None."""
    assert interface_address("lo") == "127.0.0.1"
    assert interface_address("nonexistent0") is None


def test_local_info_from_route_and_hostname(tmp_path: Path) -> None:
    """Local info: hostname as name, the route interface's IP, no project, zone or GCE."""
    info = local_instance_info(route_table=route_table(tmp_path, ("lo", "00000000", "0003", 0)))
    assert info.name == socket.gethostname()
    assert (info.internal_ip, info.external_ip, info.ip) == ("127.0.0.1", None, "127.0.0.1")
    assert (info.project, info.zone, info.instance_id) == (None, None, None)
    assert not info.on_gce


def test_falls_back_to_loopback(tmp_path: Path) -> None:
    """An interface without an address (or no route at all) falls back to 127.0.0.1."""
    table = route_table(tmp_path, ("nonexistent0", "00000000", "0003", 0))
    assert local_instance_info(route_table=table).internal_ip == "127.0.0.1"
    assert local_instance_info(route_table=tmp_path / "absent").internal_ip == "127.0.0.1"


def test_sends_no_packet(monkeypatch: pytest.MonkeyPatch) -> None:
    """Building local info never connects or sends (no UDP 'connect to 8.8.8.8' trick)."""

    def refuse(*_: object) -> NoReturn:
        raise AssertionError("local_instance_info touched the network")

    for method in ("connect", "connect_ex", "send", "sendto", "sendall"):
        monkeypatch.setattr(socket.socket, method, refuse)
    monkeypatch.setattr(socket, "getaddrinfo", refuse)
    monkeypatch.setattr(socket, "getfqdn", refuse)
    assert local_instance_info().internal_ip
