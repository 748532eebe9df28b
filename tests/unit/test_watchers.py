"""Metadata watches against the metadata emulator with the real client: preemption, jobs."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncIterator, Callable

import pytest
from notraining_agent.gce.metadata import MetadataClient
from notraining_agent.host.watchers import (
    ask_preempted,
    watch_job_attribute,
    watch_maintenance,
    watch_preempted,
)
from notraining_testkit.emulators._server import RunningServer, serve
from notraining_testkit.emulators.metadata import MetadataEmulator

from tests.polling import wait_until

JOB = json.dumps({"ntd_transaction_id": "ntd-1", "zip_art": "https://art.test/p.zip"})


@pytest.fixture
def emulator() -> MetadataEmulator:
    return MetadataEmulator()


@pytest.fixture
async def client(emulator: MetadataEmulator) -> AsyncIterator[MetadataClient]:
    running: RunningServer = await serve(emulator.app())
    metadata = MetadataClient(running.netloc)
    yield metadata
    await metadata.close()
    await close(emulator, running)


async def close(emulator: MetadataEmulator, running: RunningServer) -> None:
    """Release hanging watches first, so the server closes without its shutdown timeout."""
    emulator.drop_watches()
    await running.close()


def hanging(emulator: MetadataEmulator, path: str, count: int = 2) -> Callable[[], bool]:
    """True once ``count`` watch requests reached ``path`` (the last one is waiting)."""
    return lambda: len(emulator.requests_for("/computeMetadata/v1/" + path)) >= count


async def stop(task: asyncio.Task[None]) -> None:
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task


async def test_preempted_fires_once_when_it_turns_true(
    emulator: MetadataEmulator, client: MetadataClient
) -> None:
    """FALSE does nothing; TRUE calls on_preempted once and ends the watch."""
    calls: list[int] = []

    async def on_preempted() -> None:
        calls.append(1)

    task = asyncio.create_task(watch_preempted(client, on_preempted))
    await wait_until(hanging(emulator, "instance/preempted"))
    assert calls == []
    emulator.set_preempted(True)
    await task
    assert calls == [1]
    (request,) = emulator.requests_for("/computeMetadata/v1/instance/preempted")[-1:]
    assert request.query["wait_for_change"] == "true"
    assert "last_etag" in request.query


async def test_already_preempted_fires_at_once(client: MetadataClient) -> None:
    """A VM that is preempted when the watch starts is told on the first answer."""
    emulator_preempted = MetadataEmulator(preempted=True)
    running = await serve(emulator_preempted.app())
    fired = asyncio.Event()

    async def on_preempted() -> None:
        fired.set()

    try:
        async with MetadataClient(running.netloc) as metadata:
            await asyncio.wait_for(watch_preempted(metadata, on_preempted), 2.0)
    finally:
        await close(emulator_preempted, running)
    assert fired.is_set()


async def test_asking_tells_whether_the_vm_is_preempted_now(
    emulator: MetadataEmulator, client: MetadataClient
) -> None:
    """One plain read, no long poll: the SIGTERM path has seconds, not a watch's minute."""
    assert await ask_preempted(client, timeout=2.0) is False
    emulator.set_preempted(True)
    assert await ask_preempted(client, timeout=2.0) is True
    for request in emulator.requests_for("/computeMetadata/v1/instance/preempted"):
        assert "wait_for_change" not in request.query


async def test_asking_a_metadata_server_that_is_down_is_false_and_logged(
    emulator: MetadataEmulator, client: MetadataClient, caplog: pytest.LogCaptureFixture
) -> None:
    emulator.set_down(True)
    with caplog.at_level(logging.WARNING):
        assert await ask_preempted(client, timeout=0.5) is False
    assert "could not ask whether the VM was preempted" in caplog.text


async def test_job_attribute_appearing_fires_on_job(
    emulator: MetadataEmulator, client: MetadataClient
) -> None:
    """notraining-job appearing calls on_job with its JSON; other changes do not repeat it."""
    jobs: list[str] = []

    async def on_job(raw: str) -> None:
        jobs.append(raw)

    task = asyncio.create_task(watch_job_attribute(client, on_job))
    await wait_until(hanging(emulator, "instance/attributes/"))
    assert jobs == []
    emulator.set_instance_attribute("notraining-job", JOB)
    await wait_until(lambda: len(jobs) == 1)
    assert json.loads(jobs[0]) == json.loads(JOB)

    requests_before = len(emulator.requests_for("/computeMetadata/v1/instance/attributes/"))
    emulator.set_instance_attribute("unrelated", "x")
    await wait_until(hanging(emulator, "instance/attributes/", requests_before + 1))
    assert len(jobs) == 1

    changed = json.dumps({"ntd_transaction_id": "ntd-2", "zip_art": "https://art.test/q.zip"})
    emulator.set_instance_attribute("notraining-job", changed)
    await wait_until(lambda: len(jobs) == 2)
    assert jobs[1] == changed
    await stop(task)


async def test_job_attribute_present_at_start(client: MetadataClient) -> None:
    """A notraining-job already set when the watch starts is taken from the first answer."""
    preset = MetadataEmulator(instance_attributes={"notraining-job": JOB})
    running = await serve(preset.app())
    jobs: list[str] = []

    async def on_job(raw: str) -> None:
        jobs.append(raw)

    try:
        async with MetadataClient(running.netloc) as metadata:
            task = asyncio.create_task(watch_job_attribute(metadata, on_job))
            await wait_until(lambda: jobs == [JOB])
            await stop(task)
    finally:
        await close(preset, running)


async def test_empty_job_attribute_is_ignored(
    emulator: MetadataEmulator, client: MetadataClient
) -> None:
    """An empty notraining-job value is no job."""
    jobs: list[str] = []

    async def on_job(raw: str) -> None:
        jobs.append(raw)

    task = asyncio.create_task(watch_job_attribute(client, on_job))
    await wait_until(hanging(emulator, "instance/attributes/"))
    emulator.set_instance_attribute("notraining-job", "  ")
    await wait_until(hanging(emulator, "instance/attributes/", 3))
    assert jobs == []
    await stop(task)


async def test_maintenance_events_are_logged(
    emulator: MetadataEmulator, client: MetadataClient, caplog: pytest.LogCaptureFixture
) -> None:
    """A host maintenance event is logged as a warning; NONE is not."""
    task = asyncio.create_task(watch_maintenance(client))
    with caplog.at_level(logging.WARNING, logger="notraining_agent.host.watchers"):
        await wait_until(hanging(emulator, "instance/maintenance-event"))
        assert "maintenance" not in caplog.text
        emulator.set_maintenance_event("MIGRATE_ON_HOST_MAINTENANCE")
        await wait_until(lambda: "MIGRATE_ON_HOST_MAINTENANCE" in caplog.text)
    await stop(task)
