"""sd_notify over a real unix datagram socket, and silence outside systemd."""

from __future__ import annotations

import logging
import socket
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from notraining_agent.host.systemd import Notifier, boot_id


@pytest.fixture
def listener(tmp_path: Path) -> Iterator[tuple[socket.socket, str]]:
    """A bound datagram socket standing in for systemd, and its NOTIFY_SOCKET value."""
    path = tmp_path / "notify"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.bind(str(path))
        sock.settimeout(1.0)
        yield sock, str(path)


def received(sock: socket.socket) -> str:
    return sock.recv(4096).decode()


def test_ready_status_stopping_watchdog(listener: tuple[socket.socket, str]) -> None:
    """Each call sends its sd_notify datagram, one message per datagram."""
    sock, address = listener
    notifier = Notifier({"NOTIFY_SOCKET": address})
    assert notifier.enabled
    notifier.ready("idle")
    notifier.status("busy")
    notifier.stopping()
    notifier.watchdog()
    assert [received(sock) for _ in range(4)] == [
        "READY=1\nSTATUS=idle",
        "STATUS=busy",
        "STOPPING=1",
        "WATCHDOG=1",
    ]


def test_abstract_socket() -> None:
    """A NOTIFY_SOCKET starting with ``@`` names an abstract socket."""
    name = f"notraining-test-{uuid.uuid4().hex}"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.bind("\0" + name)
        sock.settimeout(1.0)
        Notifier({"NOTIFY_SOCKET": "@" + name}).ready("starting")
        assert received(sock) == "READY=1\nSTATUS=starting"


def test_silent_without_notify_socket(caplog: pytest.LogCaptureFixture) -> None:
    """Outside systemd every call is a no-op that logs nothing."""
    notifier = Notifier({})
    assert not notifier.enabled
    with caplog.at_level(logging.DEBUG, logger="notraining_agent.host.systemd"):
        notifier.ready("idle")
        notifier.status("busy")
        notifier.stopping()
        notifier.watchdog()
    assert caplog.records == []


def test_unreachable_socket_is_logged_not_raised(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A NOTIFY_SOCKET that nobody listens on logs a warning and does not raise."""
    notifier = Notifier({"NOTIFY_SOCKET": str(tmp_path / "gone")})
    with caplog.at_level(logging.WARNING, logger="notraining_agent.host.systemd"):
        notifier.ready("idle")
    assert any("sd_notify READY failed" in r.getMessage() for r in caplog.records)


@pytest.mark.parametrize(
    ("usec", "interval"),
    [("30000000", 15.0), ("1000000", 0.5), (None, None), ("", None), ("abc", None), ("-5", None)],
)
def test_watchdog_interval_is_half_of_watchdog_usec(
    usec: str | None, interval: float | None
) -> None:
    """The watchdog is pinged at half of WATCHDOG_USEC; without a valid value, never."""
    env = {} if usec is None else {"WATCHDOG_USEC": usec}
    assert Notifier(env).watchdog_interval == interval


def test_boot_id_is_the_kernels() -> None:
    """boot_id() reads the kernel's boot id (a UUID on Linux)."""
    value = boot_id()
    assert value == "unknown" or uuid.UUID(value)
