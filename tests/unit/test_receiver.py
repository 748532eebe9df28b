"""The receiver: every answer of contract section 4, the seed's client, and slow clients."""

from __future__ import annotations

import asyncio
import json
import logging
import socket
import time
import zlib
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from importlib import resources
from typing import Any

import aiohttp
import jwt
import pytest
import requests
from aiohttp.test_utils import TestClient
from notraining_agent.config import Secret, Settings
from notraining_agent.errors import ConfigError, StateError
from notraining_agent.http.auth import Authenticator
from notraining_agent.http.receiver import RunningReceiver, build_app, start_receiver
from notraining_agent.job.spec import JobSpec
from notraining_agent.life.states import AgentState, JobState, Offer

from tests.polling import still_waiting

TOKEN = "Hq3Lx8Vz1Rt6Yw0Pn5Mc2Kb7Jf4Gd9Sa-static"
JWT_SECRET = "k7Qy2v9Lr0XwTz4NcM8bHs1JdF6gPa3E-test-secret"
LIMIT = 4096
PATH = "/receiver_no_training/"
AUTH = {"Authorization": TOKEN}
ZIP = "https://arts.example.com/pkg/arts.zip"
ARTS = ["https://arts.example.com/pkg/a.png", "https://arts.example.com/pkg/b.png"]
# What the seed's Saturno posts with requests.post(url, headers=..., data=payload).
SEED_PAYLOAD: dict[str, Any] = {
    "country": "BR",
    "channel": "tv",
    "label": "brand",
    "category": "POP",
    "zip_art": ZIP,
    "arts_path": ARTS,
    "no_transaction_id": 99,
    "ntd_transaction_id": 4711,
}
JOB = {"ntd_transaction_id": "ntd-1", "zip_art": ZIP, "arts_path": ARTS, "country": "BR"}

ClientFactory = Callable[..., Awaitable[TestClient[Any, Any]]]


class FakeDesk:
    """A JobDesk that takes one job, remembers what it was offered, and can be steered."""

    def __init__(self, state: AgentState = AgentState.IDLE) -> None:
        self.agent_state = state
        self.offers: list[tuple[JobSpec, str]] = []
        self.jobs: dict[str, JobState] = {}
        self.fail_with: Exception | None = None

    @property
    def state(self) -> AgentState:
        return self.agent_state

    def status(self) -> Mapping[str, object]:
        job = next(iter(self.jobs.items()), None)
        current = {"ntd_transaction_id": job[0], "state": job[1]} if job else None
        return {"state": self.agent_state.value, "job": current}

    async def offer(self, spec: JobSpec, *, via: str) -> Offer:
        self.offers.append((spec, via))
        if self.fail_with is not None:
            raise self.fail_with
        ntd = spec.ntd_transaction_id
        if ntd in self.jobs:
            return Offer("known", ntd, job_state=self.jobs[ntd])
        if self.jobs:
            held = next(iter(self.jobs))
            return Offer(
                "refused",
                ntd,
                reason="another job holds this VM",
                current={"ntd_transaction_id": held, "state": self.jobs[held].value},
            )
        if not self.agent_state.takes_jobs:
            return Offer("refused", ntd, reason="the agent is shutting down", current=None)
        self.jobs[ntd] = JobState.ACCEPTED
        return Offer("accepted", ntd, job_state=JobState.ACCEPTED)


def settings(**overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "auth_mode": "static",
        "token": Secret(TOKEN),
        "max_body_bytes": LIMIT,
    }
    values.update(overrides)
    return Settings(**values)


def make_app(
    desk: FakeDesk, config: Settings | None = None, **kwargs: Any
) -> aiohttp.web.Application:
    config = config or settings()
    return build_app(
        desk=desk,
        authenticator=Authenticator(config),
        settings=config,
        metadata_hosts=frozenset({"169.254.169.254", "metadata.google.internal"}),
        **kwargs,
    )


@pytest.fixture
def desk() -> FakeDesk:
    return FakeDesk()


@pytest.fixture
async def client(aiohttp_client: ClientFactory, desk: FakeDesk) -> TestClient[Any, Any]:
    return await aiohttp_client(make_app(desk))


@pytest.fixture
async def served(desk: FakeDesk) -> AsyncIterator[RunningReceiver]:
    running = await start_receiver(make_app(desk, body_timeout=0.5), "127.0.0.1", 0)
    yield running
    await running.close()


def sent_headers(prepared: requests.PreparedRequest) -> dict[str, str]:
    """The headers ``requests`` would send, as text."""
    return {k: v if isinstance(v, str) else v.decode() for k, v in prepared.headers.items()}


async def read_response(reader: asyncio.StreamReader) -> tuple[int, dict[str, str], bytes]:
    """One HTTP/1.1 response from a raw socket: status, headers, body (hangs: pytest-timeout)."""
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split()[1])
    headers = {
        k.lower(): v.strip() for k, _, v in (line.partition(":") for line in lines[1:] if line)
    }
    body = await reader.readexactly(int(headers.get("content-length", "0")))
    return status, headers, body


# --- 200 -----------------------------------------------------------------------------------


async def test_json_job_is_accepted(client: TestClient[Any, Any], desk: FakeDesk) -> None:
    """A valid JSON job gets 200 accepted and reaches the desk as a JobSpec via http."""
    response = await client.post(PATH, json=JOB, headers=AUTH)
    assert response.status == 200
    assert await response.json() == {"status": "accepted", "ntd_transaction_id": "ntd-1"}
    [(spec, via)] = desk.offers
    assert via == "http"
    assert spec.ntd_transaction_id == "ntd-1"
    assert spec.zip_art == ZIP
    assert spec.arts_path == tuple(ARTS)
    assert spec.category == "POP"


async def test_path_without_trailing_slash(client: TestClient[Any, Any], desk: FakeDesk) -> None:
    """``/receiver_no_training`` works like the slashed path."""
    response = await client.post(PATH.rstrip("/"), json=JOB, headers=AUTH)
    assert response.status == 200
    assert len(desk.offers) == 1


async def test_seed_client_prepared_request(client: TestClient[Any, Any], desk: FakeDesk) -> None:
    """The seed's exact ``requests.post(url, headers=..., data=payload)`` bytes get 200."""
    prepared = requests.Request(
        "POST", f"http://agent{PATH}", headers={"Authorization": TOKEN}, data=SEED_PAYLOAD
    ).prepare()
    assert prepared.headers["Content-Type"] == "application/x-www-form-urlencoded"
    response = await client.post(PATH, data=prepared.body, headers=sent_headers(prepared))
    assert response.status == 200, await response.text()
    assert await response.json() == {"status": "accepted", "ntd_transaction_id": "4711"}
    spec = desk.offers[0][0]
    assert spec.arts_path == tuple(ARTS)
    assert spec.no_transaction_id == "99"


async def test_seed_client_real_requests_call(served: RunningReceiver, desk: FakeDesk) -> None:
    """A real ``requests.post`` (in a thread) against a started receiver gets 200."""
    url = f"http://127.0.0.1:{served.port}{PATH}"
    response = await asyncio.to_thread(
        requests.post, url, headers={"Authorization": TOKEN}, data=SEED_PAYLOAD, timeout=10
    )
    assert response.status_code == 200
    assert response.json() == {"status": "accepted", "ntd_transaction_id": "4711"}
    assert desk.offers[0][0].zip_art == ZIP


async def test_multipart_job_is_accepted(client: TestClient[Any, Any], desk: FakeDesk) -> None:
    """multipart/form-data fields (no file parts) are a job like any other."""
    prepared = requests.Request(
        "POST",
        f"http://agent{PATH}",
        headers=AUTH,
        files=[("ntd_transaction_id", (None, "mp-1")), ("zip_art", (None, ZIP))],
    ).prepare()
    response = await client.post(PATH, data=prepared.body, headers=sent_headers(prepared))
    assert response.status == 200, await response.text()
    assert desk.offers[0][0].ntd_transaction_id == "mp-1"


async def test_same_id_again_answers_its_state(
    client: TestClient[Any, Any], desk: FakeDesk
) -> None:
    """Re-posting a known ``ntd_transaction_id`` answers 200 with the job's state."""
    assert (await client.post(PATH, json=JOB, headers=AUTH)).status == 200
    desk.jobs["ntd-1"] = JobState.RUNNING
    response = await client.post(PATH, json=JOB, headers=AUTH)
    assert response.status == 200
    assert await response.json() == {"status": "running", "ntd_transaction_id": "ntd-1"}


async def test_a_reposted_body_is_not_parsed_again(
    client: TestClient[Any, Any], desk: FakeDesk, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The accepted job's exact bytes skip decoding and validation; the desk still answers."""
    from notraining_agent.http import receiver  # noqa: PLC0415 - to count its parses

    body = json.dumps(JOB).encode()
    headers = {**AUTH, "Content-Type": "application/json"}
    assert (await client.post(PATH, data=body, headers=headers)).status == 200
    parsed: list[object] = []
    real = receiver.parse_job
    monkeypatch.setattr(receiver, "parse_job", lambda *a, **k: parsed.append(a) or real(*a, **k))
    desk.jobs["ntd-1"] = JobState.RUNNING
    again = await client.post(PATH, data=body, headers=headers)
    assert await again.json() == {"status": "running", "ntd_transaction_id": "ntd-1"}
    assert parsed == []
    assert desk.offers[0][0] == desk.offers[1][0]
    changed = json.dumps({**JOB, "country": "PE"}).encode()
    assert (await client.post(PATH, data=changed, headers=headers)).status == 200
    assert len(parsed) == 1
    unauthenticated = await client.post(
        PATH, data=body, headers={"Content-Type": "application/json"}
    )
    assert unauthenticated.status == 401


async def test_jwt_mode_accepts_a_bearer_jwt(aiohttp_client: ClientFactory, desk: FakeDesk) -> None:
    """In jwt mode, ``Bearer <HS256 JWT>`` signed with jwt_secret is accepted."""
    config = settings(auth_mode="jwt", jwt_secret=Secret(JWT_SECRET))
    client = await aiohttp_client(make_app(desk, config))
    token = jwt.encode({"sub": "saturno", "exp": int(time.time()) + 60}, JWT_SECRET, "HS256")
    response = await client.post(PATH, json=JOB, headers={"Authorization": f"Bearer {token}"})
    assert response.status == 200
    wrong = jwt.encode({"sub": "x", "exp": int(time.time()) + 60}, JWT_SECRET + "x", "HS256")
    refused = await client.post(PATH, json=JOB, headers={"Authorization": wrong})
    assert refused.status == 401


# --- 400 -----------------------------------------------------------------------------------


async def test_every_bad_field_is_named(client: TestClient[Any, Any], desk: FakeDesk) -> None:
    """One 400 lists every invalid field, and nothing is offered."""
    body = {
        "country": 7,
        "zip_art": "ftp://arts.example.com/a.zip",
        "arts_path": ["http://127.0.0.1/a.png"],
        "label": "x" * 1000,
    }
    response = await client.post(PATH, json=body, headers=AUTH)
    assert response.status == 400
    errors = (await response.json())["errors"]
    assert set(errors) >= {"ntd_transaction_id", "country", "zip_art", "arts_path", "label"}
    assert all(isinstance(message, str) and message for message in errors.values())
    assert desk.offers == []


@pytest.mark.parametrize(
    ("body", "content_type"),
    [
        (b"{not json", "application/json"),
        (b"[1, 2]", "application/json"),
        (b"\xff\xfe", "application/json"),
        (b"", "application/json"),
        (b"ntd_transaction_id=\xff", "application/x-www-form-urlencoded"),
        (b"--x\r\n", "multipart/form-data"),
    ],
)
async def test_unreadable_bodies_are_400(
    client: TestClient[Any, Any], desk: FakeDesk, body: bytes, content_type: str
) -> None:
    """Bodies that cannot be decoded are a 400 with ``errors``, never a 5xx."""
    response = await client.post(PATH, data=body, headers={**AUTH, "Content-Type": content_type})
    assert response.status == 400
    assert (await response.json())["errors"]
    assert desk.offers == []


# --- 401 -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"Authorization": ""},
        {"Authorization": "wrong"},
        {"Authorization": f"Bearer  {TOKEN}"},
        {"Authorization": f"Basic {TOKEN}"},
    ],
)
async def test_missing_or_invalid_token_is_401(
    client: TestClient[Any, Any], desk: FakeDesk, headers: dict[str, str]
) -> None:
    """No, empty, wrong, badly spaced and oversized tokens: 401 with WWW-Authenticate: Bearer."""
    response = await client.post(PATH, json=JOB, headers=headers)
    assert response.status == 401
    assert response.headers["WWW-Authenticate"] == "Bearer"
    assert "error" in await response.json()
    assert desk.offers == []


async def test_token_over_8_kib_is_401(served: RunningReceiver, desk: FakeDesk) -> None:
    """An 8 KiB+ token reaches the auth check (not aiohttp's 8190-byte limit) and gets 401."""
    async with aiohttp.ClientSession() as session:
        for size in (8 * 1024 + 1, 12 * 1024):
            headers = {"Authorization": "Bearer " + "A" * size}
            url = f"http://127.0.0.1:{served.port}{PATH}"
            async with session.post(url, json=JOB, headers=headers) as response:
                assert response.status == 401
                assert response.headers["WWW-Authenticate"] == "Bearer"
    assert desk.offers == []


async def test_huge_header_is_refused_without_logging_it(
    served: RunningReceiver, caplog: pytest.LogCaptureFixture
) -> None:
    """A header over the server's field limit is a 400 whose log line omits its bytes."""
    caplog.set_level(logging.INFO)
    secretish = "Sx" * 10_000
    async with aiohttp.ClientSession() as session:
        url = f"http://127.0.0.1:{served.port}/healthz"
        async with session.get(url, headers={"Authorization": secretish}) as response:
            assert response.status == 400
    assert "malformed request" in caplog.text
    assert "SxSx" not in caplog.text
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]


async def test_token_in_query_string_is_ignored(
    client: TestClient[Any, Any], desk: FakeDesk
) -> None:
    """Only the header counts: ``?token=`` or ``?access_token=`` is not a credential."""
    response = await client.post(PATH, json=JOB, params={"token": TOKEN, "access_token": TOKEN})
    assert response.status == 401
    assert desk.offers == []


async def test_auth_comes_before_content_type_and_size(client: TestClient[Any, Any]) -> None:
    """Without a token, a wrong content type or a huge body still gets 401 (nothing leaks)."""
    response = await client.post(PATH, data=b"x", headers={"Content-Type": "text/plain"})
    assert response.status == 401
    response = await client.post(
        PATH, data=b"x" * (LIMIT + 1), headers={"Content-Type": "application/json"}
    )
    assert response.status == 401


# --- 409 -----------------------------------------------------------------------------------


async def test_second_job_is_409(client: TestClient[Any, Any]) -> None:
    """Another job while one holds the VM: 409 with the error and the current holder."""
    assert (await client.post(PATH, json=JOB, headers=AUTH)).status == 200
    response = await client.post(PATH, json={**JOB, "ntd_transaction_id": "ntd-2"}, headers=AUTH)
    assert response.status == 409
    body = await response.json()
    assert body["error"] == "another job holds this VM"
    assert body["current"] == {"ntd_transaction_id": "ntd-1", "state": "accepted"}


async def test_shutting_down_is_409(client: TestClient[Any, Any], desk: FakeDesk) -> None:
    """From ``reporting`` on, a new job gets 409 (current may be null)."""
    desk.agent_state = AgentState.REPORTING
    response = await client.post(PATH, json=JOB, headers=AUTH)
    assert response.status == 409
    assert await response.json() == {"error": "the agent is shutting down", "current": None}


# --- 413 -----------------------------------------------------------------------------------


async def test_content_length_over_limit_is_413(
    client: TestClient[Any, Any], desk: FakeDesk
) -> None:
    """A body announced over max_body_bytes gets 413 and is not decoded."""
    body = json.dumps({**JOB, "pad": "x" * LIMIT}).encode()
    response = await client.post(
        PATH, data=body, headers={**AUTH, "Content-Type": "application/json"}
    )
    assert response.status == 413
    assert "max_body_bytes" in (await response.json())["error"]
    assert desk.offers == []


async def test_streamed_body_over_limit_is_413(
    client: TestClient[Any, Any], desk: FakeDesk
) -> None:
    """A chunked body (no Content-Length) that grows past the limit gets 413."""

    async def chunks() -> AsyncIterator[bytes]:
        for _ in range(16):
            yield b" " * 1024

    response = await client.post(
        PATH, data=chunks(), headers={**AUTH, "Content-Type": "application/json"}
    )
    assert response.status == 413
    assert desk.offers == []


async def test_413_is_sent_before_the_announced_body(served: RunningReceiver) -> None:
    """Content-Length of 1 GB and no body: 413 comes back at once, nothing is awaited."""
    reader, writer = await asyncio.open_connection("127.0.0.1", served.port)
    writer.write(
        f"POST {PATH} HTTP/1.1\r\nHost: x\r\nAuthorization: {TOKEN}\r\n"
        "Content-Type: application/json\r\nContent-Length: 1000000000\r\n\r\n".encode()
    )
    await writer.drain()
    status, headers, _ = await read_response(reader)
    assert status == 413
    assert headers["connection"].lower() == "close"
    writer.close()


async def test_streamed_body_is_cut_off_at_the_limit(served: RunningReceiver) -> None:
    """A chunked body is answered 413 once past the limit, without waiting for its end."""
    reader, writer = await asyncio.open_connection("127.0.0.1", served.port)
    writer.write(
        f"POST {PATH} HTTP/1.1\r\nHost: x\r\nAuthorization: {TOKEN}\r\n"
        "Content-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n".encode()
    )
    chunk = b"x" * 1024
    for _ in range(LIMIT // len(chunk) + 1):
        writer.write(b"%x\r\n%s\r\n" % (len(chunk), chunk))
    await writer.drain()  # no terminating 0-chunk: the body never ends
    status, _, _ = await read_response(reader)
    assert status == 413
    writer.close()


async def test_compressed_body_is_counted_after_decompression(
    aiohttp_client: ClientFactory, desk: FakeDesk
) -> None:
    """A gzip bomb under the limit on the wire is cut off once it inflates past the limit."""
    limit = 64 * 1024
    client = await aiohttp_client(make_app(desk, settings(max_body_bytes=limit)))
    packer = zlib.compressobj(9, zlib.DEFLATED, 31)  # gzip framing
    block = b" " * 1_000_000
    bomb = b"".join([packer.compress(b"{"), *(packer.compress(block) for _ in range(50))])
    bomb += packer.compress(b"}") + packer.flush()
    assert len(bomb) < limit  # the announced size passes: only streaming can catch it
    headers = {**AUTH, "Content-Type": "application/json", "Content-Encoding": "gzip"}
    response = await client.post(PATH, data=bomb, headers=headers)
    assert response.status == 413
    assert desk.offers == []


# --- 415 -----------------------------------------------------------------------------------


@pytest.mark.parametrize("content_type", ["text/plain", "application/xml", "", "application/jsonx"])
async def test_other_content_types_are_415(
    client: TestClient[Any, Any], desk: FakeDesk, content_type: str
) -> None:
    """Anything but JSON, urlencoded or multipart gets 415."""
    headers = {**AUTH, "Content-Type": content_type}
    response = await client.post(PATH, data=json.dumps(JOB).encode(), headers=headers)
    assert response.status == 415
    assert "error" in await response.json()
    assert desk.offers == []


# --- other endpoints and errors ----------------------------------------------------------------


async def test_healthz_needs_no_auth(client: TestClient[Any, Any], desk: FakeDesk) -> None:
    """/healthz answers the agent state to anyone."""
    desk.agent_state = AgentState.BUSY
    response = await client.get("/healthz")
    assert response.status == 200
    assert await response.json() == {"status": "ok", "state": "busy"}


async def test_status_needs_auth(client: TestClient[Any, Any]) -> None:
    """/status is 401 without a token and the desk's status with one."""
    refused = await client.get("/status")
    assert refused.status == 401
    assert refused.headers["WWW-Authenticate"] == "Bearer"
    await client.post(PATH, json=JOB, headers=AUTH)
    response = await client.get("/status", headers=AUTH)
    assert response.status == 200
    assert await response.json() == {
        "state": "idle",
        "job": {"ntd_transaction_id": "ntd-1", "state": "accepted"},
    }


async def test_openapi_document_is_served(client: TestClient[Any, Any]) -> None:
    """/openapi.json serves the packaged document, as JSON, without auth."""
    response = await client.get("/openapi.json")
    assert response.status == 200
    assert response.content_type == "application/json"
    packaged = resources.files("notraining_agent.http").joinpath("openapi.json").read_bytes()
    assert await response.read() == packaged


async def test_unknown_path_is_json_404(client: TestClient[Any, Any]) -> None:
    """Unknown paths are 404 with a JSON body."""
    response = await client.get("/admin")
    assert response.status == 404
    assert response.content_type == "application/json"
    assert "error" in await response.json()


async def test_wrong_method_is_json_405(client: TestClient[Any, Any]) -> None:
    """GET on the receiver is 405 with Allow and a JSON body."""
    response = await client.get(PATH)
    assert response.status == 405
    assert "POST" in response.headers["Allow"]
    assert "POST" in (await response.json())["error"]


async def test_lifecycle_fault_is_a_json_500(
    client: TestClient[Any, Any], desk: FakeDesk, caplog: pytest.LogCaptureFixture
) -> None:
    """A fault on our side (state not saved) is a logged JSON 500, so Saturno retries."""
    desk.fail_with = StateError("disk full")
    response = await client.post(PATH, json=JOB, headers=AUTH)
    assert response.status == 500
    assert "error" in await response.json()
    assert "receiver fault" in caplog.text


async def test_each_request_is_one_log_line_without_the_token(
    client: TestClient[Any, Any], caplog: pytest.LogCaptureFixture
) -> None:
    """Outcome lines carry method, path, status and the job id, never the Authorization value."""
    caplog.set_level(logging.INFO, logger="notraining_agent")
    await client.post(PATH, json=JOB, headers=AUTH)
    await client.post(PATH, json=JOB, headers={"Authorization": "nope-Wrong-Token"})
    await client.post(PATH, json={"ntd_transaction_id": "bad-1"}, headers=AUTH)
    lines = [r for r in caplog.records if r.name == "notraining_agent.http.receiver"]
    assert [getattr(r, "http_status", None) for r in lines] == [200, 401, 400]
    assert all(getattr(r, "http_method", None) == "POST" for r in lines)
    assert all(getattr(r, "http_path", None) == PATH for r in lines)
    assert getattr(lines[0], "ntd_transaction_id", None) == "ntd-1"
    assert getattr(lines[2], "ntd_transaction_id", None) == "bad-1"
    for record in caplog.records:
        text = record.getMessage() + repr(record.__dict__)
        assert TOKEN not in text
        assert "nope-Wrong-Token" not in text


# --- serving and slow clients -------------------------------------------------------------------


async def test_start_receiver_binds_a_free_port(served: RunningReceiver) -> None:
    """Port 0 picks a free port and the receiver answers there."""
    assert served.port > 0
    url = f"http://127.0.0.1:{served.port}/healthz"
    async with aiohttp.ClientSession() as session, session.get(url) as response:
        assert response.status == 200


async def test_port_in_use_is_a_config_error(served: RunningReceiver, desk: FakeDesk) -> None:
    """A port that cannot be bound is a ConfigError naming listen_host/port."""
    with pytest.raises(ConfigError, match="listen_host/port"):
        await start_receiver(make_app(desk), "127.0.0.1", served.port)


async def test_slow_body_gets_408(served: RunningReceiver, desk: FakeDesk) -> None:
    """A body that stops arriving is answered 408 after the body timeout."""
    reader, writer = await asyncio.open_connection("127.0.0.1", served.port)
    writer.write(
        f"POST {PATH} HTTP/1.1\r\nHost: x\r\nAuthorization: {TOKEN}\r\n"
        'Content-Type: application/json\r\nContent-Length: 100\r\n\r\n{"ntd'.encode()
    )
    await writer.drain()
    status, _, _ = await read_response(reader)
    assert status == 408
    assert desk.offers == []
    writer.close()


async def test_slow_request_head_is_dropped(desk: FakeDesk) -> None:
    """A connection that never finishes its request head is closed after header_timeout,
    unanswered, and its slot is given back. The close cannot come before header_timeout
    (the clock starts before connecting); that it comes at all is the bound firing (a hang
    would be ended by pytest's timeout, far past it)."""
    timeout = 0.5
    running = await start_receiver(make_app(desk), "127.0.0.1", 0, header_timeout=timeout)
    try:
        started = time.monotonic()
        reader, writer = await asyncio.open_connection("127.0.0.1", running.port)
        writer.write(b"GET /heal")
        await writer.drain()
        assert await reader.read() == b""  # closed by the server, no answer
        assert time.monotonic() - started >= timeout
        assert running.gate.open_count == 0
        assert desk.offers == []
        writer.close()
    finally:
        await running.close()


async def test_healthz_answers_while_100_slow_clients_dribble(served: RunningReceiver) -> None:
    """100 connections dribbling their request heads a byte at a time do not stop /healthz:
    each round it answers while every one of them is still open and unanswered."""
    head = f"POST {PATH} HTTP/1.1\r\nHost: x\r\n".encode()
    sockets: list[socket.socket] = []
    try:
        for _ in range(100):
            sock = socket.create_connection(("127.0.0.1", served.port), timeout=5)
            sock.setblocking(False)
            sockets.append(sock)
        async with aiohttp.ClientSession() as session:
            for byte in range(3):
                for sock in sockets:
                    sock.send(head[byte : byte + 1])
                async with session.get(f"http://127.0.0.1:{served.port}/healthz") as response:
                    assert response.status == 200
                    assert (await response.json())["status"] == "ok"
                assert all(still_waiting(sock) for sock in sockets)
    finally:
        for sock in sockets:
            sock.close()
