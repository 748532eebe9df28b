"""Reports to Saturno: delivery, idempotent retries, final refusals and the deadline."""

from __future__ import annotations

import contextlib
import socket
from collections.abc import AsyncIterator
from typing import Any, cast

import aiohttp
import pytest
from aiohttp import web
from notraining_agent.life.saturno import SATURNO_BACKOFF, SaturnoClient
from notraining_agent.life.store import Report
from notraining_agent.util.retry import Backoff, retryable_status
from notraining_testkit.emulators._server import RunningServer, served
from notraining_testkit.emulators.saturno import SaturnoEmulator

from tests.fakes import FakeClock

AUTH = "raw-saturno-token"
NO_JITTER = Backoff(initial=1.0, factor=2.0, cap=60.0, jitter=False)


@pytest.fixture
def saturno() -> SaturnoEmulator:
    return SaturnoEmulator(authorization=AUTH)


@pytest.fixture
async def server(saturno: SaturnoEmulator) -> AsyncIterator[RunningServer]:
    async with served(saturno.app()) as running:
        saturno.base_url = running.url
        yield running


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


def client(
    session: aiohttp.ClientSession, clock: FakeClock, backoff: Backoff = NO_JITTER
) -> SaturnoClient:
    return SaturnoClient(session, lambda: AUTH, clock=clock, backoff=backoff)


def report(url: str, clock: FakeClock) -> Report:
    return Report(
        kind="done",
        url=url,
        body={"status": "done", "arts": 3, "ntd_transaction_id": "ntd-1"},
        key="idem-key-1",
        created_at=clock.wall(),
    )


class Attempts:
    """An on_attempt hook that records the attempt count it saw each time."""

    def __init__(self) -> None:
        self.seen: list[int] = []

    async def __call__(self, report: Report) -> None:
        self.seen.append(report.attempts)


def closed_port() -> int:
    """A loopback port with nothing listening (connections are refused)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


async def test_2xx_is_delivered(
    saturno: SaturnoEmulator,
    server: RunningServer,
    session: aiohttp.ClientSession,
    clock: FakeClock,
) -> None:
    """A 200 delivers the report at the first try, as JSON with the raw token and the key."""
    rep = report(saturno.done_url, clock)
    hook = Attempts()
    outcome = await client(session, clock).deliver(
        rep, deadline=clock.wall() + 900, on_attempt=hook
    )
    assert outcome == "delivered"
    assert rep.attempts == 1
    assert hook.seen == [1]
    (got,) = saturno.reports_for("done")
    assert got.body == rep.body
    assert got.authorization == AUTH
    assert got.idempotency_key == "idem-key-1"
    assert got.headers["Content-Type"].startswith("application/json")
    assert clock.sleeps == []


@pytest.mark.parametrize("status", [201, 202, 204])
async def test_any_2xx_is_success(
    saturno: SaturnoEmulator,
    server: RunningServer,
    session: aiohttp.ClientSession,
    clock: FakeClock,
    status: int,
) -> None:
    """Every 2xx counts as delivered."""
    saturno.fail("done", status)
    rep = report(saturno.done_url, clock)
    assert await client(session, clock).deliver(rep, deadline=clock.wall() + 60) == "delivered"


async def test_503_then_200_keeps_one_idempotency_key(
    saturno: SaturnoEmulator,
    server: RunningServer,
    session: aiohttp.ClientSession,
    clock: FakeClock,
) -> None:
    """A retried report carries the same Idempotency-Key on every try."""
    saturno.fail("done", 503)
    rep = report(saturno.done_url, clock)
    hook = Attempts()
    outcome = await client(session, clock).deliver(
        rep, deadline=clock.wall() + 900, on_attempt=hook
    )
    assert outcome == "delivered"
    assert [r.status for r in saturno.reports_for("done")] == [503, 200]
    assert saturno.idempotency_keys("done") == {"idem-key-1"}
    assert rep.attempts == 2
    assert hook.seen == [1, 2]
    assert clock.sleeps == [1.0]


@pytest.mark.parametrize("status", [400, 401, 403, 404, 409, 422])
async def test_other_4xx_is_final_after_one_try(
    saturno: SaturnoEmulator,
    server: RunningServer,
    session: aiohttp.ClientSession,
    clock: FakeClock,
    status: int,
) -> None:
    """A 4xx other than 408/429 is refused at once: one try, no sleep."""
    saturno.fail("done", status, times=None)
    rep = report(saturno.done_url, clock)
    hook = Attempts()
    outcome = await client(session, clock).deliver(
        rep, deadline=clock.wall() + 900, on_attempt=hook
    )
    assert outcome == "refused"
    assert len(saturno.reports_for("done")) == 1
    assert hook.seen == [1]
    assert clock.sleeps == []


async def test_wrong_token_is_refused(
    server: RunningServer,
    saturno: SaturnoEmulator,
    session: aiohttp.ClientSession,
    clock: FakeClock,
) -> None:
    """Saturno's 401 to a bad token is final, not retried until the deadline."""
    bad = SaturnoClient(session, lambda: "wrong", clock=clock, backoff=NO_JITTER)
    rep = report(saturno.done_url, clock)
    assert await bad.deliver(rep, deadline=clock.wall() + 900) == "refused"
    assert saturno.reports_for("done")[0].status == 401


@pytest.mark.parametrize("status", [408, 429, 500, 502, 503, 504])
async def test_retryable_status_until_the_deadline(
    saturno: SaturnoEmulator,
    server: RunningServer,
    session: aiohttp.ClientSession,
    clock: FakeClock,
    status: int,
) -> None:
    """408, 429 and 5xx are retried with doubling delays until the deadline, then expire."""
    saturno.fail("done", status, times=None)
    rep = report(saturno.done_url, clock)
    start = clock.wall()
    hook = Attempts()
    outcome = await client(session, clock).deliver(rep, deadline=start + 10, on_attempt=hook)
    assert outcome == "expired"
    # Tries at t = 0, 1, 3, 7 and 10: the last wait is cut to what is left.
    assert clock.sleeps == [1.0, 2.0, 4.0, 3.0]
    assert clock.wall() == start + 10
    assert rep.attempts == 5
    assert hook.seen == [1, 2, 3, 4, 5]
    assert len(saturno.reports_for("done")) == 5
    assert saturno.idempotency_keys("done") == {"idem-key-1"}


async def test_dropped_connection_is_retried(
    saturno: SaturnoEmulator,
    server: RunningServer,
    session: aiohttp.ClientSession,
    clock: FakeClock,
) -> None:
    """A connection dropped without an answer is retried."""
    saturno.refuse("done", times=2)
    rep = report(saturno.done_url, clock)
    assert await client(session, clock).deliver(rep, deadline=clock.wall() + 900) == "delivered"
    assert rep.attempts == 3


async def test_connection_refused_until_the_deadline(
    session: aiohttp.ClientSession, clock: FakeClock
) -> None:
    """Nobody listening: retried until the deadline, then expired."""
    rep = report(f"http://127.0.0.1:{closed_port()}/done/", clock)
    hook = Attempts()
    outcome = await client(session, clock).deliver(rep, deadline=clock.wall() + 5, on_attempt=hook)
    assert outcome == "expired"
    assert hook.seen == [1, 2, 3, 4]
    assert sum(clock.sleeps) == 5.0


class _Content:
    async def read(self, _n: int) -> bytes:
        return b'{"status": "ok"}'


class _Answer:
    """The part of an aiohttp response SaturnoClient reads."""

    status = 200
    content = _Content()


class TimingOutSession:
    """A session stand-in whose first posts time out, then answer 200 (no real waiting)."""

    def __init__(self, timeouts: int) -> None:
        self.timeouts = timeouts
        self.posts = 0

    @contextlib.asynccontextmanager
    async def post(self, url: str, **kwargs: Any) -> AsyncIterator[_Answer]:
        self.posts += 1
        if self.posts <= self.timeouts:
            raise TimeoutError
        yield _Answer()


async def test_timeout_is_retried(clock: FakeClock) -> None:
    """A try that times out is retried like a connection error."""
    fake = TimingOutSession(timeouts=2)
    saturno_client = SaturnoClient(
        cast("aiohttp.ClientSession", fake), lambda: AUTH, clock=clock, backoff=NO_JITTER
    )
    rep = report("http://saturno.test/done/", clock)
    assert await saturno_client.deliver(rep, deadline=clock.wall() + 60) == "delivered"
    assert rep.attempts == 3
    assert clock.sleeps == [1.0, 2.0]


@pytest.mark.parametrize("case", [(200, "delivered"), (503, "expired")])
async def test_at_least_one_try_with_a_past_deadline(
    saturno: SaturnoEmulator,
    server: RunningServer,
    session: aiohttp.ClientSession,
    clock: FakeClock,
    case: tuple[int, str],
) -> None:
    """A report whose deadline already passed (a restart, say) still gets one try."""
    status, outcome = case
    saturno.fail("done", status, times=None)
    rep = report(saturno.done_url, clock)
    assert await client(session, clock).deliver(rep, deadline=clock.wall() - 100) == outcome
    assert len(saturno.reports_for("done")) == 1
    assert clock.sleeps == []


async def test_authorization_is_asked_for_each_try(
    session: aiohttp.ClientSession, clock: FakeClock
) -> None:
    """The Authorization header is fetched fresh for every try (minted JWTs expire)."""
    open_saturno = SaturnoEmulator()
    async with served(open_saturno.app()) as running:
        open_saturno.base_url = running.url
        open_saturno.fail("done", 503)
        tokens = iter(["token-1", "token-2"])
        saturno_client = SaturnoClient(
            session, lambda: next(tokens), clock=clock, backoff=NO_JITTER
        )
        rep = report(open_saturno.done_url, clock)
        assert await saturno_client.deliver(rep, deadline=clock.wall() + 60) == "delivered"
    assert [r.authorization for r in open_saturno.reports] == ["token-1", "token-2"]


async def test_redirect_is_not_followed(session: aiohttp.ClientSession, clock: FakeClock) -> None:
    """A 3xx is not followed (the report and its token stay where they were sent); final."""
    hits: list[str] = []

    async def handle(request: web.Request) -> web.StreamResponse:
        hits.append(request.path)
        if request.path == "/done/":
            raise web.HTTPFound("/elsewhere/")
        return web.json_response({"status": "ok"})

    app = web.Application()
    app.router.add_post("/{tail:.*}", handle)
    async with served(app) as running:
        rep = report(running.url + "/done/", clock)
        outcome = await client(session, clock).deliver(rep, deadline=clock.wall() + 60)
    assert outcome == "refused"
    assert hits == ["/done/"]


async def test_default_backoff_has_jitter_within_bounds(
    saturno: SaturnoEmulator,
    server: RunningServer,
    session: aiohttp.ClientSession,
    clock: FakeClock,
) -> None:
    """With the default backoff, each wait is within [0, 1 s doubling] (full jitter)."""
    saturno.fail("done", 503, times=6)
    rep = report(saturno.done_url, clock)
    outcome = await client(session, clock, SATURNO_BACKOFF).deliver(
        rep, deadline=clock.wall() + 900
    )
    assert outcome == "delivered"
    assert len(clock.sleeps) == 6
    for sleep, ceiling in zip(clock.sleeps, [1, 2, 4, 8, 16, 32], strict=True):
        assert 0.0 <= sleep <= ceiling


def test_retryable_statuses() -> None:
    """Retryable: 408, 429 and every 5xx; nothing else."""
    assert all(retryable_status(s) for s in (408, 429, 500, 501, 503, 599))
    assert not any(retryable_status(s) for s in (200, 301, 400, 401, 403, 404, 409, 413))


async def test_retry_after_is_honoured_within_the_deadline(
    session: aiohttp.ClientSession, clock: FakeClock
) -> None:
    """A 503 with Retry-After: 5 waits 5 s before the next try; 120 s is cut to the deadline."""
    answers = [(503, "5"), (503, "120")]

    async def handle(_: web.Request) -> web.StreamResponse:
        if not answers:
            return web.json_response({"status": "ok"})
        status, after = answers.pop(0)
        return web.Response(status=status, headers={"Retry-After": after})

    app = web.Application()
    app.router.add_post("/done/", handle)
    async with served(app) as running:
        rep = report(running.url + "/done/", clock)
        outcome = await client(session, clock).deliver(rep, deadline=clock.wall() + 30)
    assert outcome == "delivered"
    assert clock.sleeps == [5.0, 25.0]
    assert rep.attempts == 3
