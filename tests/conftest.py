"""Fixtures many test modules share."""

from __future__ import annotations

from collections.abc import AsyncIterator

import aiohttp
import pytest


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    """One aiohttp client session for the test, closed after it."""
    async with aiohttp.ClientSession() as client:
        yield client
