"""How much the receiver lets in: connection caps sized from the open-files limit, and a
rate limit on the warnings that pressure produces (see :mod:`.gate` for who gets in)."""

from __future__ import annotations

import logging
import resource
import time
from collections.abc import Callable
from dataclasses import dataclass

log = logging.getLogger(__name__)

MAX_CONNECTIONS = 256
MAX_UNTRUSTED = 128
"""Above the 100 slow clients the security suite holds open, far above what Saturno needs."""
MAX_HEAD_BYTES = 32 * 1024
"""An 8 KiB token and the usual headers fit four times over."""
MAX_HEADERS = 64
FD_RESERVE = 384
"""Descriptors kept for everything but connections: job downloads and extraction, the
processor's workers, the state file, reports, logs."""
BACKLOG = 128
"""Sockets accepted in one burst before any of them is admitted or refused."""
WANTED_OPEN_FILES = 8192
WARN_INTERVAL = 60.0


@dataclass(frozen=True)
class Limits:
    """How many connections, untrusted ones, and head bytes the receiver allows."""

    connections: int = MAX_CONNECTIONS
    untrusted: int = MAX_UNTRUSTED
    head_bytes: int = MAX_HEAD_BYTES


def raise_open_files_limit(wanted: int = WANTED_OPEN_FILES) -> int:
    """Raise the soft open-files limit towards ``wanted`` (never past the hard one); return it.

    systemd's default soft limit is 1 024 whatever the hard one; the unit sets its own.
    """
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    ceiling = wanted if hard == resource.RLIM_INFINITY else min(wanted, hard)
    if soft != resource.RLIM_INFINITY and soft < ceiling:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (ceiling, hard))
            soft = ceiling
        except (ValueError, OSError):
            log.warning("could not raise the open-files limit from %d to %d", soft, ceiling)
    return int(soft) if soft != resource.RLIM_INFINITY else wanted


def limits_for(open_files: int) -> Limits:
    """Caps that leave ``FD_RESERVE`` descriptors and a burst of ``BACKLOG`` free."""
    room = max(open_files - FD_RESERVE - BACKLOG, 16)
    connections = min(MAX_CONNECTIONS, room)
    return Limits(connections=connections, untrusted=min(MAX_UNTRUSTED, max(connections // 2, 8)))


class Quiet:
    """At most one WARNING per ``interval`` for a repeated event, with a count of the rest."""

    def __init__(
        self, interval: float = WARN_INTERVAL, clock: Callable[[], float] = time.monotonic
    ):
        self._interval = interval
        self._clock = clock
        self._last: float | None = None
        self._unreported = 0

    def note(self, message: str, *args: object) -> None:
        """Count one event; log ``message % args`` when the interval since the last line passed."""
        now = self._clock()
        self._unreported += 1
        if self._last is not None and now - self._last < self._interval:
            return
        log.warning(
            message + " (%d times since the last such line)",
            *args,
            self._unreported,
            extra={"event": "receiver_pressure"},
        )
        self._last = now
        self._unreported = 0
