"""sd_notify without libsystemd: READY, STATUS, STOPPING and WATCHDOG datagrams.

systemd's ``Type=notify`` units pass ``NOTIFY_SOCKET``; outside systemd every call
is a no-op. The protocol is one datagram per message to a unix socket (an abstract
one when the path starts with ``@``), which is all the code below does.
"""

from __future__ import annotations

import logging
import socket
from collections.abc import Mapping

log = logging.getLogger(__name__)


class Notifier:
    """Sends sd_notify messages when ``NOTIFY_SOCKET`` is set; silent otherwise."""

    def __init__(self, environ: Mapping[str, str]) -> None:
        address = environ.get("NOTIFY_SOCKET", "")
        self._address = "\0" + address[1:] if address.startswith("@") else address
        usec = environ.get("WATCHDOG_USEC", "")
        self.watchdog_interval: float | None = int(usec) / 2e6 if usec.isdigit() else None

    @property
    def enabled(self) -> bool:
        """True under systemd's ``Type=notify``."""
        return bool(self._address)

    def notify(self, message: str) -> None:
        """Send ``message`` (e.g. ``READY=1``); failures are logged, never raised."""
        if not self._address:
            return
        try:
            with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
                sock.connect(self._address)
                sock.sendall(message.encode())
        except OSError as exc:
            log.warning("sd_notify %s failed: %s", message.split("=", maxsplit=1)[0], exc)

    def ready(self, status: str) -> None:
        """Tell systemd the agent is up (metadata read, receiver listening)."""
        self.notify(f"READY=1\nSTATUS={status}")

    def status(self, status: str) -> None:
        """Show ``status`` in ``systemctl status``."""
        self.notify(f"STATUS={status}")

    def stopping(self) -> None:
        """Tell systemd the agent is shutting down on purpose."""
        self.notify("STOPPING=1")

    def watchdog(self) -> None:
        """Keep systemd's watchdog from restarting a live agent."""
        self.notify("WATCHDOG=1")


def boot_id() -> str:
    """The kernel's id of this boot: a new one after every reboot."""
    try:
        with open("/proc/sys/kernel/random/boot_id", encoding="ascii") as fh:  # noqa: PTH123
            return fh.read().strip()
    except OSError:
        return "unknown"
