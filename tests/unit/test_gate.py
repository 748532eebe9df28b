"""The receiver's connection gate on a real loopback server: caps, eviction, head bound."""

from __future__ import annotations

import asyncio

from notraining_agent.http.limits import (
    Limits,
)
from notraining_agent.http.receiver import start_receiver

from tests.unit.test_receiver import PATH, TOKEN, FakeDesk, make_app, read_response


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
