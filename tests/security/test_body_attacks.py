"""Body attacks (issue 3, item 4; contract section 4), each against the REAL agent process.

One agent in jwt mode takes every attack with a valid token (auth comes first, so
only a token holder reaches the body parser). Each hostile body must get its 4xx,
never a 5xx, naming the bound it met (nesting, field count, size...), which is what
shows the parser stopped there instead of working through the whole body; an oversize
body is refused before it is sent. ``/healthz`` must keep answering, also while 100
clients dribble their requests a byte at a time: it answers while every one of them is
still open and unanswered. How long a refusal takes depends on the machine, so no test
bounds it: ``bench/body_attacks.py`` measures it for every attack here against a 2 s
target, and a hang is ended by pytest's timeout. The last test posts a valid job with
unknown fields, which the agent takes: unknown fields are ignored and only their names
logged.
"""

from __future__ import annotations

import asyncio
import json
import socket
import zlib
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import aiohttp
import pytest
import pytest_asyncio
from notraining_testkit.emulators.suite import AgentProcess, World, start_world

from tests.polling import still_waiting
from tests.security.harness import JOB_TIMEOUT, boot_agent, saturno_token

pytestmark = [pytest.mark.integration, pytest.mark.asyncio(loop_scope="module")]

LIMIT = 1024 * 1024  # the contract's default max_body_bytes
RECEIVER = "/receiver_no_training/"
JSON = "application/json"
FORM = "application/x-www-form-urlencoded"
MULTIPART = "multipart/form-data; boundary=b"


@dataclass
class Agent:
    """The module's agent, its URL and a fresh Saturno token."""

    world: World
    process: AgentProcess
    url: str
    token: str

    async def post(
        self, body: bytes, content_type: str, **headers: str
    ) -> tuple[int, dict[str, Any] | str]:
        """POST raw bytes to the receiver: status and decoded answer."""
        sent = {"Authorization": self.token, "Content-Type": content_type, **headers}
        async with (
            aiohttp.ClientSession() as session,
            session.post(f"{self.url}{RECEIVER}", data=body, headers=sent) as answer,
        ):
            text = await answer.text()
            try:
                decoded: dict[str, Any] | str = json.loads(text)
            except ValueError:
                decoded = text
            return answer.status, decoded

    async def healthz(self) -> None:
        """Asserts /healthz answered ok."""
        async with (
            aiohttp.ClientSession() as session,
            session.get(f"{self.url}/healthz") as answer,
        ):
            assert answer.status == 200
            assert (await answer.json())["status"] == "ok"


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def agent(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Agent]:
    """One idle agent with the contract's default max_body_bytes."""
    world = await start_world(attributes={"notraining-self-stop": "none"}, shutdown_grace="0s")
    process: AgentProcess | None = None
    try:
        process, url = await boot_agent(world, tmp_path_factory.mktemp("body-attacks"))
        yield Agent(world, process, url, saturno_token(world))
    finally:
        if process is not None:
            await process.close()
        await world.close()


def _job(**fields: Any) -> bytes:
    return json.dumps(fields).encode()


def _part(name: str, value: bytes, *headers: bytes) -> bytes:
    head = b"\r\n".join(
        [b'Content-Disposition: form-data; name="' + name.encode() + b'"', *headers]
    )
    return b"--b\r\n" + head + b"\r\n\r\n" + value + b"\r\n"


URL = "https://arts.example.com/a.zip"
ARTS_10K = [f"https://arts.example.com/{i}.png" for i in range(10_000)]

# name -> (body, content type, expected status, the field or phrase the answer must name)
ATTACKS: dict[str, tuple[bytes, str, int, str]] = {
    "deep-json": (b"[" * 500_000 + b"]" * 500_000, JSON, 400, "nested"),
    "deep-json-object": (b'{"a":' * 100_000 + b"1" + b"}" * 100_000, JSON, 400, "nested"),
    "json-not-an-object": (b"[1, 2, 3]", JSON, 400, "object"),
    "arts-path-10000-json": (_job(ntd_transaction_id="x", arts_path=ARTS_10K), JSON, 400, "1000"),
    "arts-path-10000-form": (
        b"ntd_transaction_id=x&" + b"&".join(b"arts_path=" + u.encode() for u in ARTS_10K),
        FORM,
        400,
        "2000 fields",
    ),
    "arts-path-json-string-nested": (
        b"ntd_transaction_id=x&arts_path=" + b"%5B" * 200_000,
        FORM,
        400,
        "nested too deeply",
    ),
    "non-utf8-json": (b'{"ntd_transaction_id": "\xff\xfe"}', JSON, 400, "UTF-8"),
    "non-utf8-form": (b"ntd_transaction_id=%FF%FE&zip_art=x", FORM, 400, "UTF-8"),
    "non-utf8-multipart": (_part("country", b"\xff") + b"--b--\r\n", MULTIPART, 400, "UTF-8"),
    "utf16-json": ('{"ntd_transaction_id": "x"}'.encode("utf-16"), JSON, 400, "UTF-8"),
    "charset-latin1": (b"{}", JSON + "; charset=latin-1", 400, "charset"),
    "lone-surrogate": (_job(ntd_transaction_id="\ud800", zip_art=URL), JSON, 400, "character"),
    "lone-surrogate-in-list-string": (
        _job(ntd_transaction_id="x", arts_path=json.dumps(["https://a.example/\ud800.png"])),
        JSON,
        400,
        "surrogate",
    ),
    "duplicate-json-key": (
        b'{"ntd_transaction_id": "a", "zip_art": "'
        + URL.encode()
        + b'", "ntd_transaction_id": "b"}',
        JSON,
        400,
        "ntd_transaction_id",
    ),
    "duplicate-form-field": (
        b"ntd_transaction_id=a&ntd_transaction_id=b",
        FORM,
        400,
        "more than once",
    ),
    "number-where-string-goes": (
        _job(ntd_transaction_id="x", zip_art=URL, country=7),
        JSON,
        400,
        "country",
    ),
    "list-where-string-goes": (_job(ntd_transaction_id="x", zip_art=[URL]), JSON, 400, "zip_art"),
    "object-as-id": (
        _job(ntd_transaction_id={"$gt": ""}, zip_art=URL),
        JSON,
        400,
        "ntd_transaction_id",
    ),
    "boolean-as-id": (_job(ntd_transaction_id=True, zip_art=URL), JSON, 400, "ntd_transaction_id"),
    "float-as-id": (_job(ntd_transaction_id=1.5, zip_art=URL), JSON, 400, "ntd_transaction_id"),
    "huge-number-as-id": (
        b'{"ntd_transaction_id": 1e400, "zip_art": "x"}',
        JSON,
        400,
        "ntd_transaction_id",
    ),
    "5000-digit-id": (b'{"ntd_transaction_id": ' + b"9" * 5000 + b"}", JSON, 400, "body"),
    "nan": (b'{"ntd_transaction_id": NaN}', JSON, 400, "body"),
    "number-where-list-goes": (_job(ntd_transaction_id="x", arts_path=5), JSON, 400, "arts_path"),
    "url-over-2048": (
        _job(ntd_transaction_id="x", zip_art=URL + "?" + "a" * 2048),
        JSON,
        400,
        "2048",
    ),
    "url-of-900-kib": (
        _job(ntd_transaction_id="x", zip_art=URL + "/" + "a" * 900_000),
        JSON,
        400,
        "2048",
    ),
    "id-of-200-kib": (_job(ntd_transaction_id="x" * 200_000, zip_art=URL), JSON, 400, "256"),
    "control-characters": (_job(ntd_transaction_id="x\x1b[31m", zip_art=URL), JSON, 400, "control"),
    "multipart-file-upload": (
        _part("zip_art", b"PK").replace(b'"zip_art"', b'"zip_art"; filename="a.zip"')
        + b"--b--\r\n",
        MULTIPART,
        400,
        "file uploads",
    ),
    "multipart-header-bomb": (
        _part("arts_path", URL.encode(), b"X-Pad: y" + b"; x=y" * 150_000) + b"--b--\r\n",
        MULTIPART,
        400,
        "ntd_transaction_id",
    ),
    "multipart-disposition-bomb": (
        b"".join(
            b'--b\r\nContent-Disposition: form-data; name="arts_path"'
            + b"; x=y" * 500
            + b"\r\n\r\nu\r\n"
            for _ in range(350)
        )
        + b"--b--\r\n",
        MULTIPART,
        400,
        "twice",
    ),
    "multipart-nested-comments": (
        b"--b\r\nContent-Disposition: form-data; name=a "
        + b"(" * 100_000
        + b")" * 100_000
        + b"\r\n\r\nx\r\n--b--\r\n",
        MULTIPART,
        400,
        "Content-Disposition",
    ),
    "multipart-no-closing-boundary": (_part("country", b"MX"), MULTIPART, 400, "boundary"),
    "multipart-2001-parts": (
        _part("arts_path", b"u") * 2001 + b"--b--\r\n",
        MULTIPART,
        400,
        "2000 parts",
    ),
    "form-1-mib-of-separators": (b"&" * (LIMIT - 1), FORM, 400, "2000 fields"),
}


@pytest.mark.parametrize("name", list(ATTACKS))
async def test_hostile_body_gets_its_4xx(agent: Agent, name: str) -> None:
    """The answer is a 4xx (never a 5xx) naming the bound or problem the parser met."""
    body, content_type, status, phrase = ATTACKS[name]
    assert len(body) <= LIMIT  # each attack fits the limit: the parser itself is under test
    got, answer = await agent.post(body, content_type)
    assert got == status, answer
    assert phrase in json.dumps(answer), answer


async def _raw_answer(reader: asyncio.StreamReader) -> int:
    status_line = await reader.readline()
    return int(status_line.split()[1])


async def _open(agent: Agent) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    host, port = agent.url.removeprefix("http://").split(":")
    return await asyncio.open_connection(host, int(port))


def _head(agent: Agent, *lines: str) -> bytes:
    return "\r\n".join(
        [
            f"POST {RECEIVER} HTTP/1.1",
            "Host: agent",
            f"Authorization: {agent.token}",
            *lines,
            "",
            "",
        ]
    ).encode()


async def test_announced_oversize_is_413_before_any_body_byte(agent: Agent) -> None:
    """Content-Length of 1 GB and no body sent: 413 though no body byte ever comes."""
    reader, writer = await _open(agent)
    try:
        writer.write(_head(agent, f"Content-Type: {JSON}", "Content-Length: 1073741824"))
        await writer.drain()
        assert await _raw_answer(reader) == 413
    finally:
        writer.close()


async def test_streamed_oversize_is_413_before_the_body_ends(agent: Agent) -> None:
    """A chunked body without length is answered 413 once past the limit, its end never sent."""
    reader, writer = await _open(agent)
    try:
        writer.write(_head(agent, f"Content-Type: {JSON}", "Transfer-Encoding: chunked"))
        chunk = b"x" * 65536
        for _ in range(LIMIT // len(chunk) + 2):
            writer.write(b"%x\r\n%s\r\n" % (len(chunk), chunk))
        await writer.drain()
        assert await _raw_answer(reader) == 413
    finally:
        writer.close()


async def test_gzip_bomb_is_cut_off_at_the_limit(agent: Agent) -> None:
    """100 KB of gzip that inflates to 100 MB: 413, counted after decompression."""
    packer = zlib.compressobj(9, zlib.DEFLATED, 31)
    bomb = b"".join(packer.compress(b" " * 10**6) for _ in range(100)) + packer.flush()
    assert len(bomb) < 200_000
    status, answer = await agent.post(bomb, JSON, **{"Content-Encoding": "gzip"})
    assert status == 413, answer


@pytest.mark.parametrize("content_type", ["text/plain", "application/xml", "application/yaml", ""])
async def test_other_content_types_are_415(agent: Agent, content_type: str) -> None:
    """Only JSON, urlencoded and multipart bodies are read."""
    status, _ = await agent.post(b'{"ntd_transaction_id": "x"}', content_type)
    assert status == 415


async def test_healthz_answers_while_100_clients_dribble(agent: Agent) -> None:
    """100 connections sending a byte at a time (head or body) do not hold the receiver:
    each round /healthz answers and a bad job gets its 400 while every one of them is still
    open and unanswered."""
    head = _head(agent, f"Content-Type: {JSON}", "Content-Length: 100000")
    host, port = agent.url.removeprefix("http://").split(":")
    connections: list[socket.socket] = []
    try:
        for _ in range(100):
            sock = socket.create_connection((host, int(port)), timeout=5)
            sock.setblocking(False)
            connections.append(sock)
        for byte in range(4):
            for index, sock in enumerate(connections):
                # half dribble their request head, half their body after a complete head
                if byte == 0 and index % 2:
                    sock.sendall(head)
                else:
                    sock.send(head[byte : byte + 1] if index % 2 == 0 else b"{")
            await agent.healthz()
            status, answer = await agent.post(b"[]", JSON)
            assert status == 400, answer
            assert all(still_waiting(sock) for sock in connections)
    finally:
        for sock in connections:
            sock.close()


async def test_no_fault_was_logged_and_the_agent_is_still_idle(agent: Agent) -> None:
    """After every attack: /healthz says idle, and no receiver fault or 5xx was logged."""
    async with (
        aiohttp.ClientSession() as session,
        session.get(f"{agent.url}/healthz") as answer,
    ):
        assert await answer.json() == {"status": "ok", "state": "idle"}
    statuses = [int(line["http_status"]) for line in agent.process.lines if "http_status" in line]
    assert statuses and max(statuses) < 500
    assert not [
        line for line in agent.process.lines if line.get("severity") in ("ERROR", "CRITICAL")
    ]


async def test_unknown_fields_are_ignored_and_only_their_names_logged(agent: Agent) -> None:
    """A valid job with extra fields is taken; the names (not values) of the extras are logged."""
    job = agent.world.art.job_payload("body-unknown", base_url=agent.world.url("art"))
    job.update({"priority": "s3cr3t-value", "callback_url": "http://169.254.169.254/"})
    status, answer = await agent.post(json.dumps(job).encode(), JSON)
    assert (status, answer) == (200, {"status": "accepted", "ntd_transaction_id": "body-unknown"})
    logged = await agent.process.wait_for_log(
        lambda line: line.get("event") == "unknown_fields", timeout=5
    )
    assert logged["fields"] == ["callback_url", "priority"]
    assert "s3cr3t-value" not in json.dumps(agent.process.lines)
    end = await agent.world.saturno.wait_for("done", timeout=JOB_TIMEOUT)
    assert end[0].body["status"] == "done"
