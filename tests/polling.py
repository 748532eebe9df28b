"""Waiting in tests for something an emulator or the lifecycle records but does not signal."""

from __future__ import annotations

import asyncio
import errno
import os
import socket
import time
from collections.abc import Callable
from pathlib import Path


async def wait_until(
    condition: Callable[[], bool], timeout: float = 2.0, interval: float = 0.001
) -> None:
    """Poll ``condition`` on the loop until it holds; TimeoutError after ``timeout``."""
    async with asyncio.timeout(timeout):
        while not condition():  # noqa: ASYNC110 - the state polled has no event to wait on
            await asyncio.sleep(interval)


def fifo_write_end(fifo: Path) -> int | None:
    """A write end of ``fifo`` if some process holds it open for reading, else None.

    A non-blocking open for writing fails (ENXIO) while nobody reads; once it succeeds the
    reader's open returns and its read blocks, since nothing is written and this end stays
    open: close it when the reader may go on (it then reads the end of the file).
    """
    try:
        return os.open(fifo, os.O_WRONLY | os.O_NONBLOCK)
    except OSError as exc:
        if exc.errno != errno.ENXIO:
            raise
        return None


async def fifo_reader_blocked(fifo: Path) -> int:
    """Wait (no time limit) until a process is blocked reading ``fifo``; its write end."""
    while (write_end := fifo_write_end(fifo)) is None:  # noqa: ASYNC110 - a FIFO has no event
        await asyncio.sleep(0.02)
    return write_end


def fifo_reader_blocked_sync(fifo: Path) -> int:
    """:func:`fifo_reader_blocked` for code outside the event loop."""
    while (write_end := fifo_write_end(fifo)) is None:
        time.sleep(0.02)
    return write_end


def still_waiting(sock: socket.socket) -> bool:
    """Whether the server has neither answered nor closed this (non-blocking) socket yet."""
    try:
        sock.recv(1)
    except BlockingIOError:
        return True
    return False
