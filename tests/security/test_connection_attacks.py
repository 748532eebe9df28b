"""Connection and request-head attacks (issue 14), each against the REAL agent process.

A thousand idle connections under systemd's default open-files limit, heads that pin
memory, bodies aiohttp cannot decode, ``Expect: 100-continue`` before auth, malformed
heads whose answers echoed the bytes, and control characters in logged paths.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import resource
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio
from notraining_agent.cli.submit import submit
from notraining_testkit.emulators.suite import AgentProcess, World, start_world

from tests.security.harness import BOOT_TIMEOUT, JOB_TIMEOUT, boot_agent, saturno_token

pytestmark = [pytest.mark.integration, pytest.mark.asyncio(loop_scope="module")]

RECEIVER = "/receiver_no_training/"
OPEN_FILES = 1024
"""systemd's default soft limit, which the red team's agent ran under."""
IDLE_CONNECTIONS = 1100
HANDFUL = 5
"""Warnings the agent may log while the idle connections come and go."""
MEMORY_BUDGET = 50 * 1024 * 1024


@dataclass
class Agent:
    """The module's idle agent, its address and a token."""

    world: World
    process: AgentProcess
    host: str
    port: int
    token: str

    async def raw(self, request: bytes, *, read_until_close: bool = True) -> bytes:
        """Send raw bytes on a fresh connection; what the agent answered before closing."""
        reader, writer = await asyncio.open_connection(self.host, self.port)
        try:
            writer.write(request)
            await writer.drain()
            if read_until_close:
                return await asyncio.wait_for(reader.read(), 10)
            return await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 10)
        finally:
            writer.close()

    async def logged(self, predicate: Callable[[dict[str, Any]], bool]) -> dict[str, Any]:
        """The agent's first log line for which ``predicate`` holds (waits for it)."""
        return await self.process.wait_for_log(predicate, 10)


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def agent(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Agent]:
    """One idle agent in jwt mode."""
    world = await start_world(attributes={"notraining-self-stop": "none"}, shutdown_grace="0s")
    process: AgentProcess | None = None
    try:
        process, url = await boot_agent(world, tmp_path_factory.mktemp("connection-attacks"))
        host, port = url.removeprefix("http://").rsplit(":", 1)
        yield Agent(world, process, host, int(port), saturno_token(world))
    finally:
        if process is not None:
            await process.close()
        await world.close()


def _status(answer: bytes) -> int:
    return int(answer.split(b" ", 2)[1])


def _rss(pid: int) -> int:
    """Resident memory of ``pid`` in bytes, from /proc."""
    for line in Path(f"/proc/{pid}/status").read_text(encoding="ascii").splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise AssertionError(f"no VmRSS for {pid}")


# --- bodies aiohttp cannot decode ----------------------------------------------------------


@pytest.mark.parametrize("method_path", ["GET /healthz", f"POST {RECEIVER}"])
async def test_an_undecodable_gzip_body_logs_no_error(agent: Agent, method_path: str) -> None:
    """Content-Encoding: gzip over bytes that are not gzip is one INFO line, not an ERROR."""
    body = b"this is not gzip at all, only text"
    marker = f"/gzip-{method_path.split(maxsplit=1)[0].lower()}"
    answer = await agent.raw(
        f"{method_path} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        f"Content-Encoding: gzip\r\nContent-Length: {len(body)}\r\n\r\n".encode()
        + body
    )
    assert _status(answer) in (200, 401), answer[:200]
    await agent.raw(f"GET {marker} HTTP/1.1\r\nHost: x\r\n\r\n".encode())  # a later request
    await agent.logged(lambda line: line.get("http_path") == marker)
    faults = [line for line in agent.process.lines if line.get("severity") in ("ERROR", "CRITICAL")]
    assert faults == [], faults


# --- Expect: 100-continue -----------------------------------------------------------------


async def test_100_continue_comes_only_after_auth_and_size_pass(agent: Agent) -> None:
    """A body is invited only when the headers pass: a refusal is the first and only answer."""
    head = f"POST {RECEIVER} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
    head += "Expect: 100-continue\r\n"
    no_token = await agent.raw(f"{head}Content-Length: 10\r\n\r\n".encode(), read_until_close=False)
    assert _status(no_token) == 401, no_token
    too_big = await agent.raw(
        f"{head}Authorization: {agent.token}\r\nContent-Length: 9999999\r\n\r\n".encode(),
        read_until_close=False,
    )
    assert _status(too_big) == 413, too_big
    welcome = await agent.raw(
        f"{head}Authorization: {agent.token}\r\nContent-Length: 2\r\n\r\n".encode(),
        read_until_close=False,
    )
    assert welcome.startswith(b"HTTP/1.1 100 Continue"), welcome


# --- malformed heads -----------------------------------------------------------------------

MALFORMED = {
    "space-in-header-name": b"GET /healthz HTTP/1.1\r\nHost: x\r\nBad Name ECHO-ME: v\r\n\r\n",
    "control-in-header-value": b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-A: ECHO-ME\x01\r\n\r\n",
    "bad-request-line": b"GET /healthz ECHO-ME\r\nHost: x\r\n\r\n",
    "bad-content-length": b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: ECHO-ME\r\n\r\n",
}


@pytest.mark.parametrize("name", list(MALFORMED))
async def test_malformed_heads_get_our_json_without_their_bytes(agent: Agent, name: str) -> None:
    """aiohttp's own 400 quoted the bad line back; the answer is our JSON error and no echo."""
    answer = await agent.raw(MALFORMED[name])
    assert _status(answer) == 400, answer
    head, _, body = answer.partition(b"\r\n\r\n")
    assert b"application/json" in head
    assert b"ECHO-ME" not in answer
    assert "malformed request" in json.loads(body)["error"]


# --- what reaches the log ------------------------------------------------------------------


async def test_control_and_bidi_characters_in_paths_are_escaped_in_the_log(agent: Agent) -> None:
    """A path with ESC, RLO and zero-width characters is logged escaped, never raw."""
    await agent.raw(b"GET /esc-%1b%5b31m-rlo-%E2%80%AE-zw-%E2%80%8B HTTP/1.1\r\nHost: x\r\n\r\n")
    line = await agent.logged(lambda line: str(line.get("http_path", "")).startswith("/esc-"))
    for raw in ("\x1b", "\u202e", "\u200b"):
        assert raw not in line["http_path"] and raw not in line["message"]
    assert line["http_path"] == "/esc-\\x1b[31m-rlo-\\u202e-zw-\\u200b"


# --- memory --------------------------------------------------------------------------------


async def test_100_partial_heads_cost_at_most_50_mb(agent: Agent) -> None:
    """100 connections each sending 128 headers of 16 KiB and never finishing the head."""
    header = b"X-Filler: " + b"a" * (16 * 1024 - 20) + b"\r\n"
    head = b"GET /healthz HTTP/1.1\r\nHost: x\r\n" + header * 127
    await agent.raw(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")  # warm
    before = _rss(agent.process.pid)
    writers: list[asyncio.StreamWriter] = []

    async def park() -> None:
        _, writer = await asyncio.open_connection(agent.host, agent.port)
        writers.append(writer)
        writer.write(head)
        with contextlib.suppress(ConnectionError):
            await writer.drain()  # the agent may refuse the head and close

    try:
        await asyncio.gather(*(park() for _ in range(100)))
        await agent.raw(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")  # the agent has read them
        grown = _rss(agent.process.pid) - before
    finally:
        for writer in writers:
            writer.close()
    assert grown <= MEMORY_BUDGET, f"the agent grew by {grown / 2**20:.0f} MB"


# --- a thousand idle connections under the default open-files limit ----------------------


def _agent_open_files_limit() -> None:
    resource.setrlimit(resource.RLIMIT_NOFILE, (OPEN_FILES, OPEN_FILES))


def _room_for_our_own_sockets(needed: int) -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != resource.RLIM_INFINITY and soft < needed:
        ceiling = needed if hard == resource.RLIM_INFINITY else max(hard, needed)
        resource.setrlimit(resource.RLIMIT_NOFILE, (needed, ceiling))  # root may raise hard


async def _hold(host: str, port: int) -> asyncio.StreamWriter | None:
    """An idle connection, or None when the agent could not take it within a few seconds."""
    try:
        _, writer = await asyncio.wait_for(asyncio.open_connection(host, port), 5)
    except (TimeoutError, OSError):
        return None
    return writer


async def test_a_job_ends_done_under_1024_open_files_and_1100_idle_connections(
    tmp_path: Path,
) -> None:
    """The job posted amid 1 100 idle connections ends done, its report delivered, quietly."""
    _room_for_our_own_sockets(IDLE_CONNECTIONS + 1000)
    world: World = await start_world(
        attributes={"notraining-self-stop": "none"}, shutdown_grace="0s"
    )
    process = AgentProcess(world.agent_env(tmp_path / "state"), preexec=_agent_open_files_limit)
    held: list[asyncio.StreamWriter | None] = []
    try:
        await process.start()
        (boot,) = await world.saturno.wait_for(
            "register", count=1, timeout=BOOT_TIMEOUT, accepted_only=True
        )
        port = int(boot.body["port"])
        held = list(
            await asyncio.gather(*(_hold("127.0.0.1", port) for _ in range(IDLE_CONNECTIONS)))
        )
        job = world.art.job_payload("ntd-crowded", base_url=world.url("art"))
        answer = await asyncio.wait_for(
            submit(f"http://127.0.0.1:{port}", job, authorization=saturno_token(world)), 30
        )
        assert answer.status == 200, answer.body
        (end,) = await world.saturno.wait_for("done", count=1, timeout=JOB_TIMEOUT)
        assert end.body["status"] == "done", end.body
        assert await process.wait(JOB_TIMEOUT) == 0
    finally:
        for writer in held:
            if writer is not None:
                writer.close()
        await process.close()
        await world.close()
    loud = [line for line in process.lines if line.get("severity") in ("WARNING", "ERROR")]
    assert len(loud) <= HANDFUL, [line.get("message") for line in loud]
    assert not [line for line in loud if line["severity"] == "ERROR"]
