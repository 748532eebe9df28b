"""The receiver's connection gate on a real loopback server: caps, eviction, head bound."""

from __future__ import annotations

import asyncio
import logging

import pytest
from notraining_agent.http.gate import (
    BACKLOG,
    FD_RESERVE,
    MAX_CONNECTIONS,
    MAX_UNTRUSTED,
    Limits,
    Quiet,
    limits_for,
)
from notraining_agent.http.receiver import start_receiver

from tests.unit.test_receiver import PATH, TOKEN, FakeDesk, make_app, read_response


def test_caps_leave_descriptors_for_the_job() -> None:
    """Under 1 024 open files the caps keep FD_RESERVE plus a burst free; more files, full caps."""
    small = limits_for(1024)
    assert small.connections + BACKLOG + FD_RESERVE <= 1024
    assert small.untrusted < small.connections
    assert limits_for(8192) == Limits(MAX_CONNECTIONS, MAX_UNTRUSTED)
    assert limits_for(100).connections >= 8


def test_quiet_logs_one_warning_per_interval(caplog: pytest.LogCaptureFixture) -> None:
    """A thousand events in one interval are one line; the next interval's line counts them."""
    now = [0.0]
    quiet = Quiet(interval=60, clock=lambda: now[0])
    with caplog.at_level(logging.WARNING, logger="notraining_agent.http.gate"):
        for _ in range(1000):
            quiet.note("busy")
        now[0] = 61
        quiet.note("busy")
    assert [r.getMessage() for r in caplog.records] == [
        "busy (1 times since the last such line)",
        "busy (1000 times since the last such line)",
    ]


async def test_oldest_unauthenticated_connections_make_room() -> None:
    """Past the untrusted cap the oldest idle connections close; a newcomer is still served."""
    running = await start_receiver(
        make_app(FakeDesk()), "127.0.0.1", 0, limits=Limits(connections=16, untrusted=4)
    )
    streams = []
    try:
        for _ in range(6):
            streams.append(await asyncio.open_connection("127.0.0.1", running.port))
            await asyncio.sleep(0)  # let the agent admit it
        oldest_reader = streams[0][0]
        assert await asyncio.wait_for(oldest_reader.read(), 5) == b""
        reader, writer = streams[-1]
        writer.write(f"GET /status HTTP/1.1\r\nHost: x\r\nAuthorization: {TOKEN}\r\n\r\n".encode())
        status, headers, _ = await read_response(reader)
        assert status == 200
        assert headers.get("connection", "").lower() != "close"  # a token holder keeps it
        assert running.gate.open_count <= 4 + 1
    finally:
        for _, writer in streams:
            writer.close()
        await running.close()


async def test_unauthenticated_connections_carry_one_request() -> None:
    """Without a valid token the answer closes the connection."""
    running = await start_receiver(make_app(FakeDesk()), "127.0.0.1", 0)
    try:
        reader, writer = await asyncio.open_connection("127.0.0.1", running.port)
        writer.write(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        status, headers, _ = await read_response(reader)
        assert status == 200
        assert headers.get("connection", "").lower() == "close"
        writer.close()
    finally:
        await running.close()


async def test_a_head_over_the_limit_gets_431_and_is_closed() -> None:
    """An unauthenticated head past head_bytes is answered 431 in JSON before it is all read."""
    running = await start_receiver(
        make_app(FakeDesk()), "127.0.0.1", 0, limits=Limits(head_bytes=1024)
    )
    try:
        reader, writer = await asyncio.open_connection("127.0.0.1", running.port)
        writer.write(f"POST {PATH} HTTP/1.1\r\nHost: x\r\n".encode() + b"X-A: b\r\n" * 200)
        status, _, body = await read_response(reader)
        assert status == 431
        assert b"request head over 1024 bytes" in body
        assert await asyncio.wait_for(reader.read(), 5) == b""
        writer.close()
    finally:
        await running.close()
