"""Backoff delays and the real clock every wait goes through."""

from __future__ import annotations

import itertools
import time

import pytest
from notraining_agent.util.retry import Backoff, Clock


def first(backoff: Backoff, count: int) -> list[float]:
    return list(itertools.islice(backoff.delays(), count))


def test_without_jitter_delays_double_then_cap() -> None:
    """initial, initial*factor, ... until the cap, then the cap forever."""
    assert first(Backoff(initial=1.0, factor=2.0, cap=60.0, jitter=False), 9) == [
        1.0,
        2.0,
        4.0,
        8.0,
        16.0,
        32.0,
        60.0,
        60.0,
        60.0,
    ]


def test_other_factor_and_small_cap() -> None:
    """The factor and the cap are honoured, the cap even below the first product."""
    assert first(Backoff(initial=0.5, factor=3.0, cap=2.0, jitter=False), 4) == [
        0.5,
        1.5,
        2.0,
        2.0,
    ]


def test_full_jitter_stays_within_each_ceiling() -> None:
    """With jitter every delay is uniform in [0, d] for the un-jittered d at that step."""
    ceilings = first(Backoff(initial=1.0, cap=8.0, jitter=False), 12)
    for _ in range(200):
        for delay, ceiling in zip(first(Backoff(initial=1.0, cap=8.0), 12), ceilings, strict=True):
            assert 0.0 <= delay <= ceiling


def test_full_jitter_spreads_delays() -> None:
    """Jittered delays vary (a herd of VMs does not retry in lockstep)."""
    seen = {round(next(Backoff(initial=10.0).delays()), 6) for _ in range(50)}
    assert len(seen) > 10


def test_delays_are_endless_and_independent() -> None:
    """Each delays() call starts again from initial; the series never ends."""
    backoff = Backoff(initial=1.0, cap=4.0, jitter=False)
    assert first(backoff, 1000)[-1] == 4.0
    assert first(backoff, 1) == [1.0]


def test_backoff_defaults_are_saturnos() -> None:
    """Defaults: 1 s doubling, capped at 60 s, with jitter (contract section 3)."""
    assert Backoff() == Backoff(initial=1.0, factor=2.0, cap=60.0, jitter=True)


def test_clock_reads_real_time() -> None:
    """wall() is epoch seconds; monotonic() never goes back."""
    clock = Clock()
    assert abs(clock.wall() - time.time()) < 1.0
    a = clock.monotonic()
    assert clock.monotonic() >= a


@pytest.mark.parametrize("seconds", [0.0, -5.0])
async def test_clock_sleep_of_zero_or_less_returns_at_once(seconds: float) -> None:
    """A negative or zero sleep does not wait (remaining time can go below zero)."""
    start = time.monotonic()
    await Clock().sleep(seconds)
    assert time.monotonic() - start < 0.1


async def test_clock_sleep_waits() -> None:
    """sleep() really waits about the time asked."""
    start = time.monotonic()
    await Clock().sleep(0.02)
    assert time.monotonic() - start >= 0.015
