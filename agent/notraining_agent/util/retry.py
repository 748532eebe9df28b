"""Capped exponential backoff with full jitter, and the clock every wait goes through.

Everything that sleeps takes a :class:`Clock`, so tests inject one that does not
really wait, and a retry loop can say "attempt N of M" and how long it will go on.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Iterator
from dataclasses import dataclass


class Clock:
    """Real time: ``monotonic()`` for deadlines, ``wall()`` for reports, ``sleep()`` to wait."""

    def monotonic(self) -> float:
        """Seconds on a clock that never goes back."""
        return time.monotonic()

    def wall(self) -> float:
        """Seconds since the epoch, for timestamps that outlive the process."""
        return time.time()

    async def sleep(self, seconds: float) -> None:
        """Wait ``seconds`` (cancellable)."""
        await asyncio.sleep(max(0.0, seconds))


@dataclass(frozen=True)
class Backoff:
    """Delays of ``initial * factor**n`` capped at ``cap``; with ``jitter``, uniform in [0, d]."""

    initial: float = 1.0
    factor: float = 2.0
    cap: float = 60.0
    jitter: bool = True

    def delays(self) -> Iterator[float]:
        """An endless series of delays; the caller bounds it by count or deadline."""
        delay = self.initial
        while True:
            yield random.uniform(0.0, delay) if self.jitter else delay  # noqa: S311 - jitter only
            delay = min(self.cap, delay * self.factor)
