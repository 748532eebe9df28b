"""The art server: package and arts, extra files, redirects, lies, slowness, payloads."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable

import aiohttp
import pytest
from aiohttp import web
from notraining_testkit.emulators._server import RunningServer, serve, served
from notraining_testkit.emulators.artgen import ArtPackage, generate_package
from notraining_testkit.emulators.artserver import ArtServer

PACKAGE: ArtPackage = generate_package(2, seed=4)
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@pytest.fixture
def arts() -> ArtServer:
    return ArtServer(PACKAGE)


@pytest.fixture
async def server(arts: ArtServer) -> AsyncIterator[RunningServer]:
    async with served(arts.app()) as running:
        yield running


async def fetch(session: aiohttp.ClientSession, url: str, **kwargs: object) -> tuple[int, bytes]:
    async with session.get(url, **kwargs) as resp:  # type: ignore[arg-type]
        return resp.status, await resp.read()


async def test_serves_zip_and_arts(
    arts: ArtServer, server: RunningServer, session: aiohttp.ClientSession
) -> None:
    """The zip and each art come back byte for byte, with image and zip content types."""
    assert await fetch(session, server.url + "/package.zip") == (200, PACKAGE.zip_bytes)
    async with session.get(server.url + "/arts/art_001.png") as resp:
        assert resp.content_type == "image/png"
        assert await resp.read() == PACKAGE.files["art_001.png"]
    assert (await fetch(session, server.url + "/arts/nope.png"))[0] == 404
    assert [r.path for r in arts.requests] == [
        "/package.zip",
        "/arts/art_001.png",
        "/arts/nope.png",
    ]
    assert len(arts.requests_for("/package.zip")) == 1


async def test_extra_files_by_path(
    arts: ArtServer, server: RunningServer, session: aiohttp.ClientSession
) -> None:
    """add_file serves bytes at any path; unknown paths are 404 and still recorded."""
    arts.add_file("evil/bomb.zip", b"PK...")
    assert await fetch(session, server.url + "/evil/bomb.zip") == (200, b"PK...")
    assert (await fetch(session, server.url + "/evil/other"))[0] == 404
    assert arts.requests[-1].path == "/evil/other"


async def test_redirect_goes_where_told(
    server: RunningServer, session: aiohttp.ClientSession
) -> None:
    """/redirect answers the status and Location asked for, and chains can be built."""
    target = server.url + "/arts/art_002.png"
    async with session.get(
        server.url + "/redirect", params={"to": target, "status": "307"}, allow_redirects=False
    ) as resp:
        assert resp.status == 307
        assert resp.headers["Location"] == target
    status, body = await fetch(
        session, server.url + "/redirect", params={"to": "/redirect?to=/arts/art_002.png"}
    )
    assert (status, body) == (200, PACKAGE.files["art_002.png"])
    assert (await fetch(session, server.url + "/redirect"))[0] == 400


async def test_lying_content_length(server: RunningServer, session: aiohttp.ClientSession) -> None:
    """/lie declares more bytes than it sends, so a careful client sees a short body."""
    real = len(PACKAGE.files["art_001.png"])
    async with session.get(server.url + "/lie/art_001.png") as resp:
        assert resp.content_length == real + 1000
        with pytest.raises(aiohttp.ClientPayloadError):
            await resp.read()
    async with session.get(server.url + "/lie/package.zip", params={"length": "10"}) as resp:
        assert resp.content_length == 10
        assert await resp.read() == PACKAGE.zip_bytes[:10]


async def test_stream_has_no_length(server: RunningServer, session: aiohttp.ClientSession) -> None:
    """/stream sends the asked number of bytes, chunked, without Content-Length."""
    async with session.get(server.url + "/stream", params={"bytes": "200000"}) as resp:
        assert resp.content_length is None
        assert len(await resp.read()) == 200_000


async def test_throttle_slows_bodies(
    arts: ArtServer, server: RunningServer, session: aiohttp.ClientSession
) -> None:
    """A throttled path trickles (80 KB at 10 kB/s cannot beat a 0.3 s timeout); other paths
    do not: an art is served whole while a throttled package body, begun first, is still
    on its way (at 100 B/s it would take over ten minutes)."""
    arts.throttle(10_000, paths=["/package.zip"])
    with pytest.raises(TimeoutError):
        await fetch(
            session,
            server.url + "/package.zip",
            timeout=aiohttp.ClientTimeout(sock_read=0.01, total=0.3),
        )
    arts.throttle(100, paths=["/package.zip"])
    async with session.get(server.url + "/package.zip") as trickling:
        assert trickling.status == 200
        assert await trickling.content.read(1) == PACKAGE.zip_bytes[:1]
        art = await fetch(session, server.url + "/arts/art_001.png")
        assert art == (200, PACKAGE.files["art_001.png"])
        assert not trickling.content.is_eof()
    arts.throttle(None)
    assert await fetch(session, server.url + "/package.zip") == (200, PACKAGE.zip_bytes)


async def test_close_ends_a_throttled_body(arts: ArtServer) -> None:
    """Closing the server does not wait for a slow body to finish: its handler ends the body
    short and returns by itself, rather than being cancelled when the server's shutdown
    grace runs out, and the client gets a short body."""
    app = arts.app()
    ended: list[str] = []

    @web.middleware
    async def outcome(request: web.Request, handler: Handler) -> web.StreamResponse:
        try:
            response = await handler(request)
        except asyncio.CancelledError:
            ended.append("cancelled")
            raise
        ended.append("returned")
        return response

    app.middlewares.insert(0, outcome)
    running = await serve(app)
    arts.throttle(100)
    async with (
        aiohttp.ClientSession() as session,
        session.get(running.url + "/arts/art_001.png") as resp,
    ):
        assert resp.status == 200
        await running.close()
        assert ended == ["returned"]
        with pytest.raises(aiohttp.ClientPayloadError):
            await resp.read()


def test_job_payload(arts: ArtServer) -> None:
    """The payload names the zip and every art under base_url; overrides and flags apply."""
    payload = arts.job_payload("ntd-1", base_url="http://h:1/", label="x")
    assert payload == {
        "country": "MX",
        "channel": "instagram",
        "label": "x",
        "category": "POP",
        "no_transaction_id": "no-ntd-1",
        "ntd_transaction_id": "ntd-1",
        "zip_art": "http://h:1/package.zip",
        "arts_path": ["http://h:1/arts/art_001.png", "http://h:1/arts/art_002.png"],
    }
    only_zip = arts.job_payload("ntd-2", base_url="http://h:1", with_paths=False)
    assert "arts_path" not in only_zip
    only_paths = arts.job_payload("ntd-3", base_url="http://h:1", with_zip=False)
    assert "zip_art" not in only_paths
