"""State publishing: systemd STATUS at once, the guest attribute with the latest state."""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from notraining_agent.gce.metadata import MetadataClient
from notraining_agent.host.guest_state import GUEST_ATTRIBUTE, StatePublisher
from notraining_agent.host.systemd import Notifier
from notraining_agent.life.states import AgentState
from notraining_testkit.emulators._server import served
from notraining_testkit.emulators.metadata import MetadataEmulator

from tests.polling import wait_until


@pytest.fixture
async def metadata() -> AsyncIterator[tuple[MetadataEmulator, MetadataClient]]:
    """A metadata emulator and a client pointed at it."""
    emulator = MetadataEmulator()
    async with served(emulator.app()) as server, MetadataClient(server.netloc) as client:
        yield emulator, client


async def test_guest_attribute_ends_at_the_latest_state(
    metadata: tuple[MetadataEmulator, MetadataClient],
) -> None:
    """Every change is published; the guest attribute settles on the last state."""
    emulator, client = metadata
    publisher = StatePublisher(Notifier({}), client)
    writer = asyncio.create_task(publisher.write_guest_attribute())
    for state in (AgentState.REGISTERING, AgentState.IDLE, AgentState.BUSY):
        publisher.publish(state)
        await asyncio.sleep(0)
    await wait_until(lambda: emulator.guest_attribute(GUEST_ATTRIBUTE) == "busy", 5)
    writer.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await writer
    history = emulator.guest_attribute_history(GUEST_ATTRIBUTE)
    assert history[-1] == "busy" and len(history) <= 3


async def test_systemd_status_is_sent_at_once(tmp_path: Path) -> None:
    """publish() sends STATUS=<state> to NOTIFY_SOCKET without waiting for the writer."""
    path = tmp_path / "notify"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as listener:
        listener.bind(str(path))
        publisher = StatePublisher(Notifier({"NOTIFY_SOCKET": str(path)}), None)
        publisher.publish(AgentState.GRACE)
        assert listener.recv(100) == b"STATUS=grace"
        await publisher.write_guest_attribute()  # no metadata: returns at once


async def test_watchdog_is_fed_only_when_asked(tmp_path: Path) -> None:
    """Without WATCHDOG_USEC the watchdog task ends at once; with it, WATCHDOG=1 is sent."""
    await StatePublisher(Notifier({}), None).keep_watchdog_fed()
    path = tmp_path / "notify"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as listener:
        listener.bind(str(path))
        env = {"NOTIFY_SOCKET": str(path), "WATCHDOG_USEC": "200000"}
        task = asyncio.create_task(StatePublisher(Notifier(env), None).keep_watchdog_fed())
        assert await asyncio.to_thread(listener.recv, 100) == b"WATCHDOG=1"
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
