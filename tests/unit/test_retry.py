"""The one retry policy: backoff, what is retryable, Retry-After, and the bounds of the loop."""

from __future__ import annotations

import asyncio
import itertools
import logging
import socket
import time

import aiohttp
import pytest
from aiohttp import web
from notraining_agent.util.retry import (
    Attempt,
    Backoff,
    Clock,
    RetriesExhausted,
    Transient,
    retry,
    retry_after,
    retryable_error,
    retryable_status,
    transient_answer,
)
from notraining_testkit.emulators._server import served

from tests.fakes import T0, FakeClock


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
    """wall() is epoch seconds (read between two time.time() calls); monotonic() never goes back."""
    clock = Clock()
    before = time.time()
    wall = clock.wall()
    assert before <= wall <= time.time()
    a = clock.monotonic()
    assert clock.monotonic() >= a


@pytest.mark.parametrize("seconds", [0.0, -5.0])
async def test_clock_sleep_of_zero_or_less_returns_at_once(seconds: float) -> None:
    """A negative or zero sleep does not wait (remaining time can go below zero): like
    ``asyncio.sleep(0)`` it only yields, so it is over after two passes of the loop, with
    no timer to wait for, however busy the machine is."""
    sleeping = asyncio.ensure_future(Clock().sleep(seconds))
    for _ in range(2):
        await asyncio.sleep(0)
    assert sleeping.done()
    await sleeping


async def test_clock_sleep_waits() -> None:
    """sleep() really waits about the time asked."""
    start = time.monotonic()
    await Clock().sleep(0.02)
    assert time.monotonic() - start >= 0.015


# -- the policy: what is retryable ----------------------------------------------------------


@pytest.mark.parametrize("status", [408, 429, 500, 501, 502, 503, 504, 599])
def test_retryable_statuses_each_have_a_reason(status: int) -> None:
    """408, 429 and every 5xx are retryable, each with a reason naming the status."""
    reason = retryable_status(status)
    assert reason is not None
    assert str(status) in reason


@pytest.mark.parametrize("status", [200, 204, 301, 304, 400, 401, 403, 404, 409, 413, 600])
def test_other_statuses_are_final(status: int) -> None:
    """Every other status is final: no reason to try again."""
    assert retryable_status(status) is None


def test_retryable_errors() -> None:
    """Timeouts, refused or dropped connections and cut answers are retryable; bugs are not."""
    assert retryable_error(TimeoutError())
    assert retryable_error(aiohttp.ServerTimeoutError())
    assert retryable_error(ConnectionResetError("reset"))
    assert retryable_error(aiohttp.ServerDisconnectedError())
    assert retryable_error(aiohttp.ClientPayloadError("cut"))
    assert retryable_error(ValueError("bug")) is None
    assert retryable_error(FileNotFoundError("local file")) is None
    assert retryable_error(aiohttp.InvalidURL("x")) is None


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("120", 120.0),
        ("0", 0.0),
        (" 7 ", 7.0),
        ("Tue, 14 Nov 2023 22:13:50 GMT", 30.0),  # 30 s after T0
        ("Tue, 14 Nov 2023 22:13:00 GMT", 0.0),  # a date already past: no wait
        (None, None),
        ("", None),
        ("soon", None),
        ("-5", None),
    ],
)
def test_retry_after_both_forms(value: str | None, expected: float | None) -> None:
    """Retry-After is delta-seconds or an HTTP date; anything else is ignored."""
    assert retry_after(value, now=T0) == expected


# -- the loop, against real loopback servers ----------------------------------------------


NO_JITTER = Backoff(jitter=False)


class Scripted:
    """A loopback server answering each GET with the next (status, headers), then 200."""

    def __init__(self, answers: list[tuple[int, dict[str, str]]]) -> None:
        self.answers = answers
        self.hits = 0

    def app(self) -> web.Application:
        async def handle(_: web.Request) -> web.Response:
            self.hits += 1
            status, headers = self.answers.pop(0) if self.answers else (200, {})
            return web.Response(status=status, text="body", headers=headers)

        app = web.Application()
        app.router.add_get("/", handle)
        return app


async def get_once(session: aiohttp.ClientSession, url: str, clock: Clock) -> int:
    """One try as the agent's callers write it: status judged by the policy."""
    try:
        async with session.get(url) as response:
            transient = transient_answer(response.status, response.headers, now=clock.wall())
            status = response.status
    except (aiohttp.ClientError, TimeoutError) as exc:
        reason = retryable_error(exc)
        if reason is None:
            raise
        raise Transient(reason) from exc
    if transient is not None:
        raise transient
    return status


async def run(
    server: Scripted,
    clock: FakeClock,
    *,
    attempts: int | None = None,
    deadline: float | None = None,
    backoff: Backoff = NO_JITTER,
) -> int:
    async with served(server.app()) as running, aiohttp.ClientSession() as session:
        return await retry(
            lambda _: get_once(session, running.url + "/", clock),
            what="GET test",
            clock=clock,
            backoff=backoff,
            attempts=attempts,
            deadline=deadline,
        )


@pytest.mark.parametrize("status", [408, 429, 500, 503])
async def test_each_retryable_status_class_is_tried_again(status: int) -> None:
    """408, 429 and 5xx answers are retried with the backoff; then the 200 comes back."""
    server, clock = Scripted([(status, {}), (status, {})]), FakeClock()
    assert await run(server, clock, attempts=5) == 200
    assert server.hits == 3
    assert clock.sleeps == [1.0, 2.0]


async def test_final_status_is_not_retried() -> None:
    """A 404 goes to the caller at once: the attempt returns it, nothing sleeps."""
    server, clock = Scripted([(404, {})]), FakeClock()
    assert await run(server, clock, attempts=5) == 404
    assert server.hits == 1
    assert clock.sleeps == []


async def test_retry_after_seconds_wins_over_the_backoff() -> None:
    """Retry-After: 7 makes the wait 7 s, not the backoff's 1 s."""
    server, clock = Scripted([(503, {"Retry-After": "7"})]), FakeClock()
    assert await run(server, clock, attempts=3, backoff=Backoff(jitter=False, cap=60)) == 200
    assert clock.sleeps == [7.0]


async def test_retry_after_http_date_is_honoured() -> None:
    """Retry-After as an HTTP date 30 s ahead of the clock makes a 30 s wait."""
    server, clock = Scripted([(429, {"Retry-After": "Tue, 14 Nov 2023 22:13:50 GMT"})]), FakeClock()
    assert await run(server, clock, deadline=clock.monotonic() + 600) == 200
    assert clock.sleeps == [30.0]


async def test_retry_after_is_capped_by_the_deadline() -> None:
    """Retry-After beyond the deadline is cut to it; the last try is made at the deadline."""
    server = Scripted([(503, {"Retry-After": "3600"}), (503, {})])
    clock = FakeClock()
    with pytest.raises(RetriesExhausted, match="failed 2 times") as caught:
        await run(server, clock, deadline=clock.monotonic() + 20)
    assert clock.sleeps == [20.0]
    assert server.hits == 2
    assert "503" in caught.value.reason


async def test_retry_after_without_a_deadline_is_capped_by_the_backoff_cap() -> None:
    """With only an attempt bound, a huge Retry-After waits at most the backoff's cap."""
    server, clock = Scripted([(503, {"Retry-After": "3600"})]), FakeClock()
    assert await run(server, clock, attempts=2, backoff=Backoff(jitter=False, cap=10)) == 200
    assert clock.sleeps == [10.0]


async def test_deadline_cuts_the_last_wait_and_ends_the_tries() -> None:
    """Tries at 0, 1, 3, 7 and 10 s for a 10 s deadline; then RetriesExhausted."""
    server, clock = Scripted([(503, {})] * 10), FakeClock()
    with pytest.raises(RetriesExhausted, match="failed 5 times"):
        await run(server, clock, deadline=clock.monotonic() + 10)
    assert clock.sleeps == [1.0, 2.0, 4.0, 3.0]
    assert server.hits == 5


async def test_attempts_bound_the_tries(caplog: pytest.LogCaptureFixture) -> None:
    """attempts=3: three tries, two waits, 'attempt N of 3' logged, then RetriesExhausted."""
    server, clock = Scripted([(500, {})] * 5), FakeClock()
    with (
        caplog.at_level(logging.WARNING, logger="notraining_agent.util.retry"),
        pytest.raises(RetriesExhausted, match=r"GET test failed 3 times \(last: HTTP 500"),
    ):
        await run(server, clock, attempts=3)
    assert server.hits == 3
    assert clock.sleeps == [1.0, 2.0]
    assert "GET test: attempt 1 of 3 failed (HTTP 500" in caplog.text
    assert "attempt 2 of 3 failed" in caplog.text
    assert "attempt 3 of 3" not in caplog.text


async def test_connection_refused_is_retried() -> None:
    """Nobody listening: a connection error, retried until the attempts run out."""
    clock = FakeClock()
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    async with aiohttp.ClientSession() as session:
        with pytest.raises(RetriesExhausted, match="connection failed"):
            await retry(
                lambda _: get_once(session, f"http://127.0.0.1:{port}/", clock),
                what="GET closed port",
                clock=clock,
                backoff=Backoff(jitter=False),
                attempts=2,
            )
    assert clock.sleeps == [1.0]


async def test_a_past_deadline_still_gets_one_try() -> None:
    """A deadline already gone: one try is made, and its success counts."""
    server, clock = Scripted([]), FakeClock()
    assert await run(server, clock, deadline=clock.monotonic() - 5) == 200
    assert server.hits == 1


async def test_attempt_timeout_is_cut_to_the_deadline() -> None:
    """Attempt.timeout gives the caller's longest timeout, cut to what the deadline leaves."""
    clock = FakeClock()
    seen: list[float] = []

    async def call(this: Attempt) -> None:
        seen.append(this.timeout(30.0))
        if this.number < 2:
            raise Transient("again")

    await retry(
        call,
        what="t",
        clock=clock,
        backoff=Backoff(initial=8, jitter=False),
        deadline=clock.monotonic() + 10,
    )
    assert seen == [10.0, 2.0]


async def test_a_bound_is_required() -> None:
    """Neither attempts nor deadline: a ValueError, not an endless loop."""

    async def call(_: Attempt) -> None:
        return None

    with pytest.raises(ValueError, match="needs a bound"):
        await retry(call, what="t", clock=FakeClock(), backoff=Backoff())
