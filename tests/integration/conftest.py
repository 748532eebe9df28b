"""Fixtures for running the real agent process against the emulators on loopback."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest
from notraining_testkit.emulators.suite import AgentProcess, World, start_world

BOOT_TIMEOUT = 30.0
JOB_TIMEOUT = 60.0

AgentFactory = Callable[..., AgentProcess]


@pytest.fixture
async def world() -> AsyncIterator[World]:
    """Every emulator, served on 127.0.0.1, with the VM's attributes pointing at them."""
    started = await start_world()
    try:
        yield started
    finally:
        await started.close()


@pytest.fixture
async def agents(world: World, tmp_path: Path) -> AsyncIterator[AgentFactory]:
    """Makes agent processes on one state_dir (a restart reuses it); kills leftovers."""
    made: list[AgentProcess] = []

    def make(**settings: str) -> AgentProcess:
        process = AgentProcess(world.agent_env(tmp_path / "state", **settings))
        made.append(process)
        return process

    yield make
    for process in made:
        await process.close()


def saturno_token(world: World, **claims: Any) -> str:
    """An Authorization value like Saturno's: an HS256 JWT with the shared secret, raw."""
    return world.saturno_token(**claims)


async def boot(world: World, agent: AgentProcess) -> tuple[dict[str, Any], str]:
    """Start ``agent``, wait for its boot report; return the report and the receiver's URL."""
    await agent.start()
    reports = await world.saturno.wait_for("register", timeout=BOOT_TIMEOUT, accepted_only=True)
    body = reports[-1].body
    return body, f"http://127.0.0.1:{body['port']}"


def fake_systemctl_calls(tmp_path: Path) -> list[str]:
    """What the fake systemctl on the agent's PATH was asked to do."""
    calls = tmp_path / "fake-bin" / "systemctl.calls"
    return calls.read_text(encoding="utf-8").split() if calls.exists() else []
