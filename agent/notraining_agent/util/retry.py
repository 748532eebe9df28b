"""The one retry policy: what is worth another try, how long to wait, and when to stop.

- **What** (:func:`retryable_status`, :func:`retryable_error`): connection errors and
  timeouts, HTTP 408, 429 and every 5xx. Anything else is final. Each gives a reason.
- **How long**: capped exponential backoff with full jitter (:class:`Backoff`), unless
  the answer carried ``Retry-After`` (delta-seconds or an HTTP date), which wins,
  capped by the caller's deadline (or, with no deadline, by the backoff's cap).
- **When to stop**: every caller declares its bounds at the call, ``attempts`` and/or
  a ``deadline``; :func:`retry` logs "attempt N of M" and raises
  :class:`RetriesExhausted` when they run out.

Every wait goes through a :class:`Clock`, so tests inject one that does not really
sleep (the seam stamina's ``set_testing`` gives). stamina was weighed and not taken:
with tenacity it added 0.5 MiB of RSS and 30-90 ms of import to the agent's idle
process, and the classification, Retry-After and deadline code here would stay anyway.
"""

from __future__ import annotations

import asyncio
import email.utils
import logging
import random
import time
from collections.abc import Awaitable, Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import TypeVar

import aiohttp

log = logging.getLogger(__name__)

T = TypeVar("T")


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


# -- what is worth another try ------------------------------------------------------------


def retryable_status(status: int) -> str | None:
    """Why an HTTP answer with ``status`` is worth another try; None when it is final."""
    if status == 408:
        return "HTTP 408: the server gave up waiting for the request"
    if status == 429:
        return "HTTP 429: rate limited"
    if 500 <= status <= 599:
        return f"HTTP {status}: the server failed or is overloaded"
    return None


def retryable_error(exc: BaseException) -> str | None:
    """Why a call that raised ``exc`` is worth another try; None when it is not.

    Timeouts, refused or dropped connections, and answers cut short. Library-specific
    errors (google-api-core's, requests') are mapped onto these by their callers.
    """
    if isinstance(exc, TimeoutError):  # also asyncio's and aiohttp's timeouts
        return f"no answer in time ({type(exc).__name__})"
    if isinstance(exc, aiohttp.ClientResponseError):
        return retryable_status(exc.status)
    if isinstance(exc, aiohttp.ClientConnectionError | aiohttp.ClientPayloadError):
        return f"connection failed ({type(exc).__name__}: {exc})"
    if isinstance(exc, ConnectionError):
        return f"connection failed ({type(exc).__name__}: {exc})"
    return None


def retry_after(value: str | None, *, now: float) -> float | None:
    """Seconds a ``Retry-After`` header asks for (delta-seconds or an HTTP date at ``now``)."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:  # an HTTP date is GMT; a naive one is read as such
        return None
    return max(0.0, when.timestamp() - now)


class Transient(Exception):  # noqa: N818 - a signal to try again, not an error to report
    """Raised by an attempt when its failure is worth another try."""

    def __init__(self, reason: str, *, retry_after: float | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.retry_after = retry_after


def transient_answer(status: int, headers: Mapping[str, str], *, now: float) -> Transient | None:
    """A :class:`Transient` for a retryable HTTP answer (with its Retry-After), else None."""
    reason = retryable_status(status)
    if reason is None:
        return None
    return Transient(reason, retry_after=retry_after(headers.get("Retry-After"), now=now))


class RetriesExhausted(Exception):  # noqa: N818 - callers turn it into their own error
    """Every allowed attempt failed transiently; ``reason`` is the last failure's."""

    def __init__(self, what: str, attempts: int, reason: str) -> None:
        super().__init__(f"{what} failed {attempts} times (last: {reason})")
        self.attempts = attempts
        self.reason = reason


# -- the loop -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Attempt:
    """One try: its number, and how long the caller's deadline leaves for it."""

    number: int
    of: int | None
    deadline: float | None
    clock: Clock

    def remaining(self) -> float | None:
        """Seconds until the deadline (may be below 0), or None without one."""
        return None if self.deadline is None else self.deadline - self.clock.monotonic()

    def timeout(self, longest: float, *, shortest: float = 0.1) -> float:
        """A timeout for this try: ``longest``, cut to what the deadline leaves."""
        remaining = self.remaining()
        return longest if remaining is None else max(shortest, min(longest, remaining))


async def retry(
    call: Callable[[Attempt], Awaitable[T]],
    *,
    what: str,
    clock: Clock,
    backoff: Backoff,
    attempts: int | None = None,
    deadline: float | None = None,
    logger: logging.Logger = log,
    extra: Mapping[str, object] | None = None,
) -> T:
    """Run ``call`` until it returns, raises something final, or the bounds run out.

    ``call`` raises :class:`Transient` for a failure worth another try; anything else
    goes straight to the caller. There is always a first try, even past the deadline
    (``deadline`` is on ``clock.monotonic()``). After a transient failure, the wait is
    Retry-After if given, else the next backoff delay; either is cut to what the
    deadline leaves, and a last try is made at the deadline. Raises
    :class:`RetriesExhausted` when ``attempts`` tries failed or the deadline passed.
    """
    if attempts is None and deadline is None:
        raise ValueError("retry() needs a bound: attempts, deadline or both")
    if attempts is not None and attempts < 1:
        raise ValueError(f"attempts must be at least 1, not {attempts}")
    delays = backoff.delays()
    number = 0
    while True:
        number += 1
        try:
            return await call(Attempt(number, attempts, deadline, clock))
        except Transient as exc:
            failure = exc
        remaining = None if deadline is None else deadline - clock.monotonic()
        if (attempts is not None and number >= attempts) or (
            remaining is not None and remaining <= 0
        ):
            raise RetriesExhausted(what, number, failure.reason) from failure
        delay = next(delays)
        if failure.retry_after is not None:
            delay = (
                min(failure.retry_after, backoff.cap) if remaining is None else failure.retry_after
            )
        if remaining is not None:
            delay = min(delay, remaining)
        counted = f"attempt {number} of {attempts}" if attempts is not None else f"attempt {number}"
        left = "" if remaining is None else f", {remaining:.1f} s left before the deadline"
        logger.warning(
            "%s: %s failed (%s); retrying in %.1f s%s",
            what,
            counted,
            failure.reason,
            delay,
            left,
            extra=dict(extra or {}),
        )
        await clock.sleep(delay)
