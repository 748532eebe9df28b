"""The ledger: a report is on disk before it is sent, and each try's outcome is saved.

Real parts: the StateStore in tmp, the SaturnoClient against the Saturno emulator on
loopback. The clock is fake so the backoff between tries costs nothing.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from notraining_agent.config import Secret, Settings
from notraining_agent.life.ledger import Ledger
from notraining_agent.life.saturno import SaturnoClient
from notraining_agent.life.store import AgentRecord, StateStore
from notraining_agent.util.retry import Backoff
from notraining_testkit.emulators._server import served
from notraining_testkit.emulators.saturno import SaturnoEmulator

from tests.fakes import FakeClock

BODY = {"name": "vm-1", "status": "done"}


class RefusingStore(StateStore):
    """A disk that is full: every save raises ENOSPC."""

    async def save(self, record: AgentRecord) -> None:
        raise OSError(28, "No space left on device")


@pytest.fixture
async def saturno() -> AsyncIterator[SaturnoEmulator]:
    emulator = SaturnoEmulator(authorization="saturno-token")
    async with served(emulator.app()) as running:
        emulator.base_url = running.url
        yield emulator


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as client:
        yield client


def ledger(
    saturno: SaturnoEmulator,
    session: aiohttp.ClientSession,
    store: StateStore,
    **settings: Any,
) -> Ledger:
    clock = FakeClock()
    values: dict[str, Any] = {
        "register_url": saturno.register_url,
        "done_url": saturno.done_url,
        "jwt_secret": Secret("x" * 40),
        "notify_deadline": 60.0,
        "state_dir": store.state_dir,
    }
    values.update(settings)
    client = SaturnoClient(
        session, lambda: "saturno-token", clock=clock, backoff=Backoff(jitter=False)
    )
    return Ledger(
        store.open(), store=store, saturno=client, settings=Settings(**values), clock=clock
    )


async def test_a_report_goes_to_its_url_and_its_outcome_is_saved(
    saturno: SaturnoEmulator, session: aiohttp.ClientSession, tmp_path: Path
) -> None:
    store = StateStore(tmp_path)
    books = ledger(saturno, session, store)
    books.record.end = books.new_report("done", BODY)
    await books.deliver(books.record.end)

    (sent,) = saturno.reports_for("done")
    assert sent.body == BODY
    assert sent.idempotency_key == books.record.end.key
    saved = store.open().end
    assert saved is not None
    assert (saved.outcome, saved.attempts) == ("delivered", 1)


async def test_each_try_is_saved_so_a_restart_resends_with_the_same_key(
    saturno: SaturnoEmulator, session: aiohttp.ClientSession, tmp_path: Path
) -> None:
    saturno.fail("register", 503, times=2)
    store = StateStore(tmp_path)
    books = ledger(saturno, session, store)
    books.record.register = books.new_report("register", BODY)
    await books.commit()
    await books.deliver(books.record.register)

    assert len(saturno.reports_for("register")) == 3
    assert saturno.idempotency_keys("register") == {books.record.register.key}
    saved = store.open().register
    assert saved is not None
    assert (saved.outcome, saved.attempts) == ("delivered", 3)


async def test_local_mode_skips_the_report_and_says_so(
    saturno: SaturnoEmulator,
    session: aiohttp.ClientSession,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    store = StateStore(tmp_path)
    books = ledger(saturno, session, store, done_url=None)
    books.record.end = books.new_report("done", BODY)
    with caplog.at_level(logging.WARNING):
        await books.deliver(books.record.end)

    assert saturno.reports_for("done") == []
    saved = store.open().end
    assert saved is not None
    assert saved.outcome == "skipped"
    assert "no done URL is configured" in caplog.text


async def test_a_delivered_report_is_not_sent_again(
    saturno: SaturnoEmulator, session: aiohttp.ClientSession, tmp_path: Path
) -> None:
    books = ledger(saturno, session, StateStore(tmp_path))
    books.record.end = books.new_report("done", BODY)
    await books.deliver(books.record.end)
    await books.deliver(books.record.end)

    assert len(saturno.reports_for("done")) == 1


async def test_a_full_disk_is_logged_and_the_report_still_goes_out(
    saturno: SaturnoEmulator,
    session: aiohttp.ClientSession,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    books = ledger(saturno, session, RefusingStore(tmp_path))
    books.record.end = books.new_report("done", BODY)
    with caplog.at_level(logging.ERROR):
        await books.deliver(books.record.end)

    assert len(saturno.reports_for("done")) == 1
    assert books.record.end.outcome == "delivered"
    assert "free space in state_dir" in caplog.text
    assert "No space left on device" in caplog.text


async def test_commit_raises_on_a_full_disk(
    saturno: SaturnoEmulator, session: aiohttp.ClientSession, tmp_path: Path
) -> None:
    books = ledger(saturno, session, RefusingStore(tmp_path))
    with pytest.raises(OSError, match="No space left"):
        await books.commit()
