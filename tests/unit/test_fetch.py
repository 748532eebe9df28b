"""Downloads against real loopback servers: guard, redirects, byte budget, lies, gs://."""

from __future__ import annotations

import asyncio
import hashlib
import logging
from collections.abc import AsyncIterator
from pathlib import Path
from urllib.parse import quote

import pytest
from aiohttp import web
from notraining_agent.errors import InputRefusedError
from notraining_agent.job.fetch import MAX_REDIRECTS, download_all
from notraining_agent.job.transfer import Downloaded
from notraining_testkit.emulators._server import RunningServer, serve, served
from notraining_testkit.emulators.artgen import ArtPackage, generate_package
from notraining_testkit.emulators.artserver import ArtServer

PACKAGE: ArtPackage = generate_package(3, seed=11)
BIG = 10**9


@pytest.fixture
def arts() -> ArtServer:
    return ArtServer(PACKAGE)


@pytest.fixture
async def server(arts: ArtServer) -> AsyncIterator[RunningServer]:
    async with served(arts.app()) as running:
        yield running


async def fetch(
    urls: list[str],
    dest: Path,
    server: RunningServer,
    *,
    allowed: frozenset[str] | None = None,
    budget: int = BIG,
    read_timeout: float = 60.0,
) -> list[Downloaded]:
    return await download_all(
        urls,
        dest,
        allowed_hosts=allowed if allowed is not None else frozenset({server.netloc}),
        metadata_hosts=frozenset({"169.254.169.254", "metadata.google.internal"}),
        max_total_bytes=budget,
        read_timeout=read_timeout,
    )


def leftovers(dest: Path) -> list[str]:
    return sorted(p.name for p in dest.iterdir()) if dest.exists() else []


async def test_downloads_in_order_with_hashes(
    server: RunningServer, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Each URL lands in dest under its basename, with its size and sha256, in order."""
    urls = [f"{server.url}/package.zip"] + [
        f"{server.url}/arts/{n}?sig=secret" for n in PACKAGE.names
    ]
    progress: list[tuple[int, int]] = []
    with caplog.at_level(logging.INFO, logger="notraining_agent.job.fetch"):
        results = await download_all(
            urls,
            tmp_path / "in",
            allowed_hosts=frozenset({server.netloc}),
            metadata_hosts=frozenset(),
            max_total_bytes=BIG,
            on_progress=lambda done, total: progress.append((done, total)),
            progress_interval=0.0,
        )
    assert [r.url for r in results] == urls
    assert [r.name for r in results] == ["package.zip", *PACKAGE.names]
    for result, data in zip(results, [PACKAGE.zip_bytes, *PACKAGE.files.values()], strict=True):
        assert result.path.read_bytes() == data
        assert result.size == len(data)
        assert result.sha256 == hashlib.sha256(data).hexdigest()
    assert progress[-1] == (4, 4)
    events = [r for r in caplog.records if getattr(r, "event", None) == "download"]
    assert events and all("?" not in r.url for r in events)  # type: ignore[attr-defined]
    assert "secret" not in caplog.text
    assert leftovers(tmp_path / "in") == sorted(["package.zip", *PACKAGE.names])


async def test_repeated_basenames_get_unique_files(server: RunningServer, tmp_path: Path) -> None:
    """Two URLs with one basename keep the name but get distinct files."""
    name = PACKAGE.names[0]
    results = await fetch(
        [f"{server.url}/arts/{name}", f"{server.url}/arts/{name}?v=2"], tmp_path, server
    )
    paths = [r.path for r in results]
    assert [p.name for p in paths] == [name, name.replace(".png", "-2.png")]
    assert all(r.name == name for r in results)


async def test_localhost_refused_at_connect_unless_listed(
    server: RunningServer, tmp_path: Path
) -> None:
    """A name resolving to loopback is refused at connect; host:port in the list allows it."""
    url = f"http://localhost:{server.port}/arts/{PACKAGE.names[0]}"
    with pytest.raises(InputRefusedError, match="loopback"):
        await fetch([url], tmp_path / "a", server)
    results = await fetch(
        [url], tmp_path / "b", server, allowed=frozenset({f"localhost:{server.port}"})
    )
    assert results[0].size == len(PACKAGE.files[PACKAGE.names[0]])


async def test_literal_loopback_refused_without_listing(
    server: RunningServer, tmp_path: Path
) -> None:
    """A literal 127.0.0.1 URL (which bypasses resolvers) is refused by the static check."""
    with pytest.raises(InputRefusedError, match="loopback"):
        await fetch([f"{server.url}/package.zip"], tmp_path, server, allowed=frozenset())


@pytest.mark.parametrize(
    "target",
    [
        "http://169.254.169.254/computeMetadata/v1/instance/service-accounts/default/token",
        "http://metadata.google.internal/computeMetadata/v1/",
        "http://10.0.0.1/x",
        "http://[::1]/x",
        "file:///etc/passwd",
        "gs://bucket/object",
    ],
)
async def test_redirect_to_forbidden_target(
    server: RunningServer, tmp_path: Path, target: str
) -> None:
    """A redirect from an allowed host to metadata, private, file: or gs: is refused."""
    url = f"{server.url}/redirect?to={quote(target, safe='')}"
    with pytest.raises(InputRefusedError, match="redirected to"):
        await fetch([url], tmp_path, server)


async def test_redirect_to_unlisted_name_refused_at_connect(
    server: RunningServer, tmp_path: Path
) -> None:
    """A redirect to localhost (same port, not listed by name) fails the connect-time check."""
    target = f"http://localhost:{server.port}/arts/{PACKAGE.names[0]}"
    with pytest.raises(InputRefusedError, match="loopback"):
        await fetch([f"{server.url}/redirect?to={quote(target, safe='')}"], tmp_path, server)


def chain(server: RunningServer, hops: int, final: str) -> str:
    url = final
    for _ in range(hops):
        url = f"{server.url}/redirect?to={quote(url, safe='')}"
    return url


async def test_redirect_limit(server: RunningServer, tmp_path: Path) -> None:
    """Five redirects are followed; a sixth is refused."""
    final = f"{server.url}/arts/{PACKAGE.names[0]}"
    ok = await fetch([chain(server, MAX_REDIRECTS, final)], tmp_path / "ok", server)
    assert ok[0].path.read_bytes() == PACKAGE.files[PACKAGE.names[0]]
    with pytest.raises(InputRefusedError, match="more than 5 redirects"):
        await fetch([chain(server, MAX_REDIRECTS + 1, final)], tmp_path / "no", server)


async def test_budget_is_shared_across_files(server: RunningServer, tmp_path: Path) -> None:
    """Files that fit alone but not together fail the job on max_download_bytes."""
    server_files = [f"{server.url}/stream?bytes=600000", f"{server.url}/stream?bytes=600000"]
    with pytest.raises(InputRefusedError, match="max_download_bytes"):
        await fetch(server_files, tmp_path, server, budget=1_000_000)
    assert not [n for n in leftovers(tmp_path) if n.endswith(".part")]
    assert len(await fetch(server_files[:1], tmp_path / "one", server, budget=1_000_000)) == 1


async def test_announced_length_over_budget_refused_early(
    arts: ArtServer, server: RunningServer, tmp_path: Path
) -> None:
    """A Content-Length above the budget is refused before reading the body."""
    name = PACKAGE.names[0]
    with pytest.raises(InputRefusedError, match="announces"):
        await fetch([f"{server.url}/lie/{name}?length=5000000"], tmp_path, server, budget=1_000_000)


async def test_short_length_cannot_hide_a_big_body(server: RunningServer, tmp_path: Path) -> None:
    """A chunked body with no length is counted while streaming, not trusted."""
    with pytest.raises(InputRefusedError, match="max_download_bytes"):
        await fetch([f"{server.url}/stream?bytes=3000000"], tmp_path, server, budget=1_000_000)


async def test_body_shorter_than_announced_fails(server: RunningServer, tmp_path: Path) -> None:
    """A body that ends before its Content-Length fails with the URL named."""
    url = f"{server.url}/lie/{PACKAGE.names[0]}"
    with pytest.raises(InputRefusedError, match=r"/lie/.* failed"):
        await fetch([url], tmp_path, server)
    assert leftovers(tmp_path) == []


async def test_http_error_names_the_url(server: RunningServer, tmp_path: Path) -> None:
    """A 404 fails the job with the URL and the status."""
    with pytest.raises(InputRefusedError, match=r"nope\.png failed: the server answered HTTP 404"):
        await fetch([f"{server.url}/arts/nope.png"], tmp_path, server)


async def test_read_timeout(tmp_path: Path) -> None:
    """A server that stops sending fails the download after read_timeout."""

    async def stall(request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse()
        response.content_length = 100
        await response.prepare(request)
        await response.write(b"x")
        await asyncio.sleep(30)
        return response

    app = web.Application()
    app.router.add_get("/slow.png", stall)
    running = await serve(app)
    try:
        with pytest.raises(InputRefusedError, match="timed out"):
            await fetch([f"{running.url}/slow.png"], tmp_path, running, read_timeout=0.3)
    finally:
        await running.close()
    assert leftovers(tmp_path) == []


async def test_cancel_leaves_no_partial_files(
    arts: ArtServer, server: RunningServer, tmp_path: Path
) -> None:
    """Cancelling mid-download (job_timeout, SIGTERM) removes the temporary files."""
    arts.throttle(100_000)
    task = asyncio.create_task(fetch([f"{server.url}/stream?bytes=10000000"], tmp_path, server))
    await asyncio.sleep(0.3)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert leftovers(tmp_path) == []


async def test_gs_download_uses_json_api_and_token(tmp_path: Path) -> None:
    """gs://bucket/object goes to STORAGE_EMULATOR_HOST's media URL with the bearer token."""
    seen: list[tuple[str, str | None]] = []

    async def media(request: web.Request) -> web.Response:
        seen.append((request.raw_path, request.headers.get("Authorization")))
        return web.Response(body=b"gs-bytes")

    app = web.Application()
    app.router.add_get("/storage/v1/b/{bucket}/o/{obj}", media)
    running = await serve(app)

    async def token() -> str:
        return "ya29.test"

    try:
        results = await download_all(
            ["gs://my-bucket/arts/a%20b.png"],
            tmp_path,
            allowed_hosts=frozenset(),
            metadata_hosts=frozenset(),
            max_total_bytes=BIG,
            token=token,
            storage_emulator_host=running.netloc,
        )
    finally:
        await running.close()
    assert seen == [("/storage/v1/b/my-bucket/o/arts%2Fa%20b.png?alt=media", "Bearer ya29.test")]
    assert results[0].name == "a b.png"
    assert results[0].path.read_bytes() == b"gs-bytes"


async def test_a_url_named_like_another_ones_temporary_file(
    arts: ArtServer, server: RunningServer, tmp_path: Path
) -> None:
    """``a.png`` and ``.a.png.part`` each get their own bytes: no temp name is a target."""
    arts.add_file("one/a.png", b"the real a.png " * 1000)
    arts.add_file("two/.a.png.part", b"another file " * 1000)
    urls = [f"{server.url}/one/a.png", f"{server.url}/two/.a.png.part"]
    results = await fetch(urls, tmp_path / "in", server)
    expected = [b"the real a.png " * 1000, b"another file " * 1000]
    for result, data in zip(results, expected, strict=True):
        assert result.path.read_bytes() == data
        assert result.sha256 == hashlib.sha256(data).hexdigest()
    assert leftovers(tmp_path / "in") == [".a.png.part", "a.png"]


async def test_a_malformed_answer_never_puts_the_signed_query_in_the_error(
    tmp_path: Path,
) -> None:
    """aiohttp's error text carries the full URL; the job's error keeps only the shown URL."""

    async def garbage(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: x\r\n\r\n")
        await writer.drain()
        writer.close()

    raw = await asyncio.start_server(garbage, "127.0.0.1", 0)
    netloc = f"127.0.0.1:{raw.sockets[0].getsockname()[1]}"
    signed = f"http://{netloc}/a.zip?X-Goog-Signature=deadbeefcafe&X-Goog-Credential=sa%40p"
    try:
        with pytest.raises(InputRefusedError) as info:
            await download_all(
                [signed],
                tmp_path,
                allowed_hosts=frozenset({netloc}),
                metadata_hosts=frozenset(),
                max_total_bytes=BIG,
            )
    finally:
        raw.close()
        await raw.wait_closed()
    message = str(info.value)
    assert f"http://{netloc}/a.zip" in message
    assert "deadbeefcafe" not in message and "X-Goog" not in message


async def test_unhashed_downloads_get_no_digest(server: RunningServer, tmp_path: Path) -> None:
    """A download the caller marks unhashed (the zip) is written whole but gets no sha256."""
    urls = [f"{server.url}/arts/{name}" for name in PACKAGE.names[:2]]
    got = await download_all(
        urls,
        tmp_path,
        allowed_hosts=frozenset({server.netloc}),
        metadata_hosts=frozenset(),
        max_total_bytes=BIG,
        unhashed=frozenset({0}),
    )
    assert got[0].sha256 == "" and got[0].path.read_bytes() == PACKAGE.files[PACKAGE.names[0]]
    assert got[1].sha256 == hashlib.sha256(PACKAGE.files[PACKAGE.names[1]]).hexdigest()
