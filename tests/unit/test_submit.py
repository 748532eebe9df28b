"""``notraining-agent submit``: the body is what the seed's requests.post sends."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import pytest
import requests
from aiohttp import web
from notraining_agent.cli.submit import RECEIVER_PATH, form_fields, get_status, load_job, submit
from notraining_agent.errors import ConfigError
from notraining_testkit.emulators._server import RunningServer, served

JOB: dict[str, Any] = {
    "ntd_transaction_id": 123,
    "no_transaction_id": "no-9",
    "country": "Côte d'Ivoire",
    "channel": "web & app",
    "label": "a+b=c",
    "category": "POP",
    "zip_art": "https://art.test/pack.zip?x=1&y=2",
    "arts_path": ["https://art.test/a b.png", "https://art.test/ñ.png"],
}


@dataclass
class Seen:
    """What the fake receiver got."""

    requests: list[tuple[str, str, str, bytes]] = field(default_factory=list)
    status: int = 200
    answer: str = '{"status": "accepted", "ntd_transaction_id": "123"}'


@pytest.fixture
def seen() -> Seen:
    return Seen()


@pytest.fixture
async def receiver(seen: Seen) -> AsyncIterator[RunningServer]:
    """A receiver stand-in recording method, path, headers and raw body."""

    async def handle(request: web.Request) -> web.Response:
        body = await request.read()
        seen.requests.append(
            (
                request.method,
                request.path,
                f"{request.headers.get('Authorization')}|{request.content_type}",
                body,
            )
        )
        return web.Response(text=seen.answer, status=seen.status)

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", handle)
    async with served(app) as running:
        yield running


def requests_body(job: dict[str, Any]) -> bytes:
    """The body requests.post(url, data=job) would send."""
    body = requests.Request("POST", "http://x.test/", data=job).prepare().body
    assert isinstance(body, str)
    return body.encode()


async def test_form_body_equals_requests(receiver: RunningServer, seen: Seen) -> None:
    """By default the bytes on the wire equal the seed's requests.post(data=payload)."""
    answer = await submit(receiver.url, JOB, authorization="tok")
    assert answer.status == 200
    assert answer.body == {"status": "accepted", "ntd_transaction_id": "123"}
    ((method, path, meta, body),) = seen.requests
    assert (method, path) == ("POST", RECEIVER_PATH)
    assert meta == "tok|application/x-www-form-urlencoded"
    assert body == requests_body(JOB)


def test_form_fields_repeat_list_keys_and_skip_none() -> None:
    """Lists become repeated keys, None values are left out, everything else is text."""
    fields = form_fields({"a": [1, "x"], "b": None, "c": True, "d": 2})
    assert fields == [("a", "1"), ("a", "x"), ("c", "True"), ("d", "2")]


def test_form_fields_skip_none_inside_lists() -> None:
    """A null inside arts_path is left out, as requests does."""
    assert form_fields({"arts_path": ["u1", None]}) == [("arts_path", "u1")]


async def test_json_mode(receiver: RunningServer, seen: Seen) -> None:
    """--json posts the job as a JSON object."""
    await submit(receiver.url, JOB, authorization="Bearer tok", as_json=True)
    ((_, _, meta, body),) = seen.requests
    assert meta == "Bearer tok|application/json"
    assert json.loads(body) == JOB


@pytest.mark.parametrize(
    "suffix",
    [RECEIVER_PATH, "/receiver_no_training", "/", ""],
    ids=["full", "noslash", "/", "base"],
)
async def test_url_may_be_base_or_receiver(
    receiver: RunningServer, seen: Seen, suffix: str
) -> None:
    """The URL may be the agent's base URL or the receiver URL, with or without slash."""
    await submit(receiver.url + suffix, {"ntd_transaction_id": "1"}, authorization="t")
    path = seen.requests[0][1]
    expected = "/receiver_no_training" if suffix == "/receiver_no_training" else RECEIVER_PATH
    assert path == expected


async def test_error_status_and_text_body(receiver: RunningServer, seen: Seen) -> None:
    """A non-JSON answer is returned as text with its status."""
    seen.status, seen.answer = 415, "unsupported"
    answer = await submit(receiver.url, JOB, authorization="t")
    assert (answer.status, answer.body) == (415, "unsupported")


async def test_get_status(receiver: RunningServer, seen: Seen) -> None:
    """status GETs /status with the token and decodes JSON."""
    seen.answer = '{"state": "idle", "job": null}'
    answer = await get_status(receiver.url + "/", authorization="tok")
    assert answer.status == 200
    assert answer.body == {"state": "idle", "job": None}
    assert seen.requests[0][:2] == ("GET", "/status")
    assert seen.requests[0][2].startswith("tok|")


def test_load_job() -> None:
    """A job file holds one JSON object; anything else is a ConfigError."""
    assert load_job('{"ntd_transaction_id": "1"}') == {"ntd_transaction_id": "1"}
    with pytest.raises(ConfigError, match="not JSON"):
        load_job("{nope")
    with pytest.raises(ConfigError, match="one JSON object"):
        load_job("[1, 2]")
