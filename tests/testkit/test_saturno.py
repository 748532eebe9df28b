"""The Saturno emulator: recording, scripted faults, auth checks, waiting for reports."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator

import aiohttp
import jwt
import pytest
from notraining_testkit.emulators._server import RunningServer, served
from notraining_testkit.emulators.saturno import SaturnoEmulator

SECRET = "s" * 40


@pytest.fixture
def saturno() -> SaturnoEmulator:
    return SaturnoEmulator()


@pytest.fixture
async def server(saturno: SaturnoEmulator) -> AsyncIterator[RunningServer]:
    async with served(saturno.app()) as running:
        saturno.base_url = running.url
        yield running


async def post(
    session: aiohttp.ClientSession, url: str, body: object, **headers: str
) -> int | None:
    """POST JSON; the status, or None when the connection was dropped."""
    try:
        async with session.post(url, json=body, headers=headers) as resp:
            return resp.status
    except aiohttp.ClientError:
        return None


async def test_records_reports(
    saturno: SaturnoEmulator, server: RunningServer, session: aiohttp.ClientSession
) -> None:
    """Each POST is recorded with its path, headers, parsed JSON and receive time."""
    assert saturno.register_url == server.url + "/register/"
    before = time.time()
    status = await post(
        session,
        saturno.register_url,
        {"name": "vm-1", "port": 80},
        Authorization="tok",
        **{"Idempotency-Key": "k1"},
    )
    assert status == 200
    (report,) = saturno.reports
    assert report.kind == "register"
    assert report.path == "/register/"
    assert report.body == {"name": "vm-1", "port": 80}
    assert report.authorization == "tok"
    assert report.idempotency_key == "k1"
    assert report.accepted
    assert before <= report.received_at <= time.time()


async def test_path_without_trailing_slash(
    saturno: SaturnoEmulator, server: RunningServer, session: aiohttp.ClientSession
) -> None:
    """``/done`` is the same endpoint as ``/done/``."""
    assert await post(session, server.url + "/done", {}) == 200
    assert saturno.reports_for("done")[0].path == "/done"


async def test_script_plays_in_order(
    saturno: SaturnoEmulator, server: RunningServer, session: aiohttp.ClientSession
) -> None:
    """refuse, then 503 twice, then 200: retries meet the faults in the order scripted."""
    saturno.refuse("done")
    saturno.fail("done", 503, times=2)
    statuses = [await post(session, saturno.done_url, {"n": i}) for i in range(4)]
    assert statuses == [None, 503, 503, 200]
    assert [r.status for r in saturno.reports_for("done")] == [None, 503, 503, 200]
    assert len(saturno.reports_for("done", accepted_only=True)) == 1
    assert await post(session, saturno.register_url, {}) == 200  # the other kind is untouched


async def test_fail_forever_and_clear(
    saturno: SaturnoEmulator, server: RunningServer, session: aiohttp.ClientSession
) -> None:
    """times=None fails every call until clear_faults()."""
    saturno.fail("register", 400, times=None)
    assert [await post(session, saturno.register_url, {}) for _ in range(3)] == [400] * 3
    saturno.clear_faults()
    assert await post(session, saturno.register_url, {}) == 200


async def test_delayed_answer(
    saturno: SaturnoEmulator, server: RunningServer, session: aiohttp.ClientSession
) -> None:
    """delay() holds the answer for the given time, recorded at arrival."""
    saturno.delay("register", 0.3)
    started = time.monotonic()
    assert await post(session, saturno.register_url, {}) == 200
    assert time.monotonic() - started >= 0.3
    assert saturno.reports[0].received_at < time.time() - 0.25


async def test_wait_for_returns_when_reports_arrive(
    saturno: SaturnoEmulator, server: RunningServer, session: aiohttp.ClientSession
) -> None:
    """wait_for wakes on the report it waits for, counting accepted ones when asked."""
    saturno.fail("done", 500)
    waiter = asyncio.create_task(saturno.wait_for("done", count=1, timeout=5, accepted_only=True))
    await post(session, saturno.done_url, {"try": 1})
    await asyncio.sleep(0.05)
    assert not waiter.done()
    await post(session, saturno.done_url, {"try": 2})
    reports = await waiter
    assert [r.body for r in reports] == [{"try": 2}]


async def test_wait_for_times_out(saturno: SaturnoEmulator, server: RunningServer) -> None:
    """wait_for raises TimeoutError naming how many reports came."""
    with pytest.raises(TimeoutError, match="0 of 2 register"):
        await saturno.wait_for("register", count=2, timeout=0.1)


async def test_counts_distinct_idempotency_keys(
    saturno: SaturnoEmulator, server: RunningServer, session: aiohttp.ClientSession
) -> None:
    """Retries of one report share a key; distinct reports are counted once each."""
    for key in ("a", "a", "b"):
        await post(session, saturno.done_url, {}, **{"Idempotency-Key": key})
    await post(session, saturno.register_url, {}, **{"Idempotency-Key": "c"})
    assert saturno.idempotency_keys("done") == {"a", "b"}
    assert saturno.count_idempotency_keys() == 3


async def test_static_authorization(session: aiohttp.ClientSession) -> None:
    """With a static value set, anything else is answered 401 with WWW-Authenticate."""
    saturno = SaturnoEmulator(authorization="right")
    async with served(saturno.app()) as running:
        saturno.base_url = running.url
        assert await post(session, saturno.register_url, {}, Authorization="wrong") == 401
        assert await post(session, saturno.register_url, {}) == 401
        assert await post(session, saturno.register_url, {}, Authorization="right") == 200
        assert [r.status for r in saturno.reports] == [401, 401, 200]


async def test_jwt_authorization(session: aiohttp.ClientSession) -> None:
    """A raw HS256 JWT with exp signed with the secret passes; its claims are recorded."""
    saturno = SaturnoEmulator(jwt_secret=SECRET)
    now = int(time.time())
    good = jwt.encode({"sub": "vm-1", "iat": now, "exp": now + 300}, SECRET, algorithm="HS256")
    no_exp = jwt.encode({"sub": "vm-1"}, SECRET, algorithm="HS256")
    other = jwt.encode({"sub": "vm-1", "exp": now + 300}, "x" * 40, algorithm="HS256")
    async with served(saturno.app()) as running:
        saturno.base_url = running.url
        assert await post(session, saturno.done_url, {}, Authorization=good) == 200
        assert await post(session, saturno.done_url, {}, Authorization=no_exp) == 401
        assert await post(session, saturno.done_url, {}, Authorization=other) == 401
        assert saturno.reports[0].jwt_claims is not None
        assert saturno.reports[0].jwt_claims["sub"] == "vm-1"


def test_urls_need_base_url() -> None:
    """register_url before base_url is set is a clear error, not a wrong URL."""
    with pytest.raises(RuntimeError, match="base_url"):
        _ = SaturnoEmulator().register_url
