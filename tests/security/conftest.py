"""Fixtures of the hostile-input proofs: the emulator world and traps on loopback."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from notraining_testkit.emulators.suite import World, start_world

from tests.security.harness import Trap, start_trap

INTERNAL_HOST = "127.0.0.2"
"""A private service the VM can reach but a job must not: any loopback address will do."""
METADATA_HOST = "127.0.0.3"
"""Where the tests' metadata server stand-in listens (named by GCE_METADATA_HOST)."""


@pytest.fixture
async def world() -> AsyncIterator[World]:
    """Every emulator on loopback; agents end right after their report and stop nothing."""
    started = await start_world(attributes={"notraining-self-stop": "none"}, shutdown_grace="0s")
    try:
        yield started
    finally:
        await started.close()


@pytest.fixture
async def internal() -> AsyncIterator[Trap]:
    """An internal service on 127.0.0.2 that records every request it gets."""
    trap = await start_trap(INTERNAL_HOST)
    try:
        yield trap
    finally:
        await trap.server.close()
