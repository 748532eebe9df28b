"""Waiting in tests for something an emulator or the lifecycle records but does not signal."""

from __future__ import annotations

import asyncio
from collections.abc import Callable


async def wait_until(
    condition: Callable[[], bool], timeout: float = 2.0, interval: float = 0.001
) -> None:
    """Poll ``condition`` on the loop until it holds; TimeoutError after ``timeout``."""
    async with asyncio.timeout(timeout):
        while not condition():  # noqa: ASYNC110 - the state polled has no event to wait on
            await asyncio.sleep(interval)
