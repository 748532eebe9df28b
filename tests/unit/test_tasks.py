"""TaskOwner: background tasks are cancelled and awaited on close; failures are logged."""

from __future__ import annotations

import asyncio
import logging

import pytest
from notraining_agent.life.tasks import TaskOwner


async def test_close_cancels_and_awaits_running_tasks() -> None:
    """close() cancels every running task and returns once their cleanup ran."""
    owner = TaskOwner()
    cleaned: list[str] = []
    started = asyncio.Event()

    async def forever(name: str) -> None:
        try:
            started.set()
            await asyncio.sleep(3600)
        finally:
            await asyncio.sleep(0)  # cleanup that itself awaits still completes
            cleaned.append(name)

    tasks = [owner.spawn(forever(f"t{i}"), f"t{i}") for i in range(3)]
    await started.wait()
    await owner.close()
    assert all(task.cancelled() for task in tasks)
    assert sorted(cleaned) == ["t0", "t1", "t2"]


async def test_spawn_names_the_task() -> None:
    """Tasks carry the name given, for logs and debugging."""
    owner = TaskOwner()
    task = owner.spawn(asyncio.sleep(0), "publish-state")
    assert task.get_name() == "publish-state"
    await task
    await owner.close()


async def test_close_with_nothing_running_returns() -> None:
    """close() on an owner whose tasks all ended (or had none) returns at once."""
    owner = TaskOwner()
    await owner.close()
    task = owner.spawn(asyncio.sleep(0, result=42), "quick")
    assert await task == 42
    await owner.close()
    assert not task.cancelled()


async def test_failed_task_is_logged(caplog: pytest.LogCaptureFixture) -> None:
    """A task that dies of an error is logged with its name and traceback."""
    owner = TaskOwner()

    async def boom() -> None:
        raise RuntimeError("kaput")

    task = owner.spawn(boom(), "register")
    with caplog.at_level(logging.ERROR, logger="notraining_agent.life.tasks"):
        await asyncio.wait({task})
        await asyncio.sleep(0)  # done callbacks run on the next loop turn
    records = [r for r in caplog.records if r.name == "notraining_agent.life.tasks"]
    assert len(records) == 1
    assert "background task register failed" in records[0].getMessage()
    assert "kaput" in records[0].getMessage()
    assert records[0].exc_info is not None
    await owner.close()


async def test_cancelled_task_is_not_logged_as_failed(caplog: pytest.LogCaptureFixture) -> None:
    """Cancellation by close() is normal and logs nothing."""
    owner = TaskOwner()
    owner.spawn(asyncio.sleep(3600), "watch")
    await asyncio.sleep(0)
    with caplog.at_level(logging.DEBUG, logger="notraining_agent.life.tasks"):
        await owner.close()
        await asyncio.sleep(0)
    assert [r for r in caplog.records if r.name == "notraining_agent.life.tasks"] == []


async def test_close_is_bounded_for_stubborn_tasks(caplog: pytest.LogCaptureFixture) -> None:
    """A task that ignores cancellation makes close() warn after its timeout, not hang."""
    owner = TaskOwner()
    release = asyncio.Event()
    running = asyncio.Event()

    async def stubborn() -> None:
        running.set()
        try:
            await asyncio.sleep(3600)
        except asyncio.CancelledError:
            await release.wait()  # swallows the cancel until the test lets it go

    task = owner.spawn(stubborn(), "stubborn")
    await running.wait()
    with caplog.at_level(logging.WARNING, logger="notraining_agent.life.tasks"):
        await owner.close(timeout=0.05)
    assert not task.done()
    assert any("stubborn did not stop" in r.getMessage() for r in caplog.records)
    release.set()
    await task
