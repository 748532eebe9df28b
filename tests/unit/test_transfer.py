"""job.transfer: one answer into one file, against a real loopback server."""

from __future__ import annotations

import hashlib
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest
from aiohttp import web
from notraining_agent.errors import InputRefusedError
from notraining_agent.job.transfer import FLUSH_BYTES, ByteBudget, guarded_get, save_body
from notraining_testkit.emulators._server import RunningServer, served

BODY = bytes(range(256)) * (3 * FLUSH_BYTES // 256 + 7)  # several flushes and a remainder


def app() -> web.Application:
    async def art(_request: web.Request) -> web.Response:
        return web.Response(body=BODY)

    async def gone(_request: web.Request) -> web.Response:
        return web.Response(status=404)

    application = web.Application()
    application.router.add_get("/art.jpg", art)
    application.router.add_get("/gone.jpg", gone)
    return application


def files(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


@pytest.fixture
async def server() -> AsyncIterator[RunningServer]:
    async with served(app()) as running:
        yield running


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as client:
        yield client


def test_the_budget_is_counted_across_calls_and_names_the_key_to_raise() -> None:
    budget = ByteBudget(10)
    budget.take(6, "https://a.test/1")
    assert budget.remaining == 4
    with pytest.raises(InputRefusedError, match="raise max_download_bytes"):
        budget.take(5, "https://a.test/2")
    assert budget.remaining == 0


async def test_a_body_is_written_whole_and_hashed_in_the_same_pass(
    server: RunningServer, session: aiohttp.ClientSession, tmp_path: Path
) -> None:
    url = server.url + "/art.jpg?X-Goog-Signature=secret"
    target = tmp_path / "art.jpg"
    budget = ByteBudget(len(BODY))
    async with guarded_get(session, url, "art.jpg") as response:
        done = await save_body(response, url, target, budget, progress_interval=3600)

    assert target.read_bytes() == BODY
    assert (done.name, done.size) == ("art.jpg", len(BODY))
    assert done.sha256 == hashlib.sha256(BODY).hexdigest()
    assert budget.remaining == 0
    assert files(tmp_path) == ["art.jpg"]


async def test_a_body_over_the_budget_leaves_no_file(
    server: RunningServer, session: aiohttp.ClientSession, tmp_path: Path
) -> None:
    url = server.url + "/art.jpg"
    with pytest.raises(InputRefusedError, match="max_download_bytes"):
        async with guarded_get(session, url, "art.jpg") as response:
            await save_body(
                response, url, tmp_path / "art.jpg", ByteBudget(1000), progress_interval=3600
            )
    assert files(tmp_path) == []  # no .part left behind


async def test_an_error_status_names_the_url_and_what_to_check(
    server: RunningServer, session: aiohttp.ClientSession
) -> None:
    with pytest.raises(InputRefusedError) as refused:
        async with guarded_get(session, server.url + "/gone.jpg", "https://arts.test/gone.jpg"):
            pass
    assert str(refused.value) == (
        "download of https://arts.test/gone.jpg failed: the server answered HTTP 404; "
        "check the URL and its access rights"
    )


async def test_a_closed_port_is_a_named_failure(session: aiohttp.ClientSession) -> None:
    async with served(app()) as running:
        url = running.url + "/art.jpg"
    with pytest.raises(InputRefusedError, match=r"^download of art\.jpg failed: .*retry$"):
        async with guarded_get(session, url, "art.jpg"):
            pass
