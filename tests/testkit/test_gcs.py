"""The Cloud Storage emulator, driven by the real google-cloud-storage client and by aiohttp."""

from __future__ import annotations

import asyncio
import io
import os
from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import quote

import aiohttp
import google_crc32c
import pytest
from google.api_core import exceptions as api
from google.cloud import storage
from notraining_testkit.emulators import _gcs_wire
from notraining_testkit.emulators._server import RunningServer, served
from notraining_testkit.emulators.gcs import GcsEmulator


@pytest.fixture
def emulator() -> GcsEmulator:
    return GcsEmulator(buckets=("results",))


@pytest.fixture
async def server(
    emulator: GcsEmulator, monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[RunningServer]:
    async with served(emulator.app()) as running:
        monkeypatch.setenv("STORAGE_EMULATOR_HOST", running.url)
        yield running


def _bucket() -> Any:
    """A bucket handle of the real client (anonymous, through STORAGE_EMULATOR_HOST)."""
    return storage.Client().bucket("results")


async def test_multipart_upload_by_the_real_client(
    emulator: GcsEmulator, server: RunningServer
) -> None:
    """A small upload arrives whole, with its content type and custom metadata."""

    def upload() -> None:
        blob = _bucket().blob("AR/job 1/manifest.json")
        blob.metadata = {"job": "ntd-1"}
        blob.upload_from_string(b'{"ok": true}', content_type="application/json", retry=None)

    await asyncio.to_thread(upload)
    stored = emulator.get_object("results", "AR/job 1/manifest.json")
    assert stored is not None
    assert stored.data == b'{"ok": true}'
    assert stored.content_type == "application/json"
    assert stored.metadata == {"job": "ntd-1"}
    assert emulator.calls_for("upload")[0].query["uploadType"] == "multipart"


async def test_resumable_upload_in_chunks(emulator: GcsEmulator, server: RunningServer) -> None:
    """A stream of unknown size goes up in 256 KiB chunks (308 between) and checks its CRC32C."""
    data = os.urandom(700_000)

    def upload() -> None:
        blob = _bucket().blob("big/index.npz", chunk_size=256 * 1024)
        blob.upload_from_file(io.BytesIO(data), retry=None)

    await asyncio.to_thread(upload)
    assert emulator.objects("results") == {"big/index.npz": data}
    assert len(emulator.calls_for("upload_chunk")) == 3


async def test_download_paths_of_the_client_and_the_job_fetcher(
    emulator: GcsEmulator, server: RunningServer
) -> None:
    """Both /download/storage/v1 (client) and /storage/v1?alt=media (agent) serve the bytes."""
    emulator.put("results", "a dir/é.png", b"\x89PNG data", "image/png")
    assert await asyncio.to_thread(_bucket().blob("a dir/é.png").download_as_bytes) == (
        b"\x89PNG data"
    )
    url = f"{server.url}/storage/v1/b/results/o/{quote('a dir/é.png', safe='')}?alt=media"
    async with aiohttp.ClientSession() as session, session.get(url) as response:
        assert response.status == 200
        assert await response.read() == b"\x89PNG data"
        assert response.headers["Content-Type"] == "image/png"
        assert "crc32c=" in response.headers["X-Goog-Hash"]
    assert len(emulator.calls_for("download")) == 2


async def test_object_metadata_and_listing(emulator: GcsEmulator, server: RunningServer) -> None:
    """Listing honours prefix, delimiter and pages; metadata carries size and hashes."""
    for name in ("p/a.txt", "p/b.txt", "p/sub/c.txt", "q/d.txt"):
        emulator.put("results", name, name.encode())

    def work() -> tuple[list[str], list[str], Any]:
        client = storage.Client()
        names = [b.name for b in client.list_blobs("results", prefix="p/", max_results=10)]
        pages = client.list_blobs("results", prefix="p/", delimiter="/", page_size=1)
        shallow = [b.name for b in pages]
        return names, shallow, client.bucket("results").get_blob("p/a.txt")

    names, shallow, blob = await asyncio.to_thread(work)
    assert names == ["p/a.txt", "p/b.txt", "p/sub/c.txt"]
    assert shallow == ["p/a.txt", "p/b.txt"]
    assert blob.size == 7
    assert blob.crc32c == _gcs_wire.crc32c(b"p/a.txt")


async def test_missing_bucket_and_object(server: RunningServer) -> None:
    """Google's 404 shape: the client raises NotFound for both."""
    with pytest.raises(api.NotFound):
        await asyncio.to_thread(
            storage.Client().bucket("nope").blob("x").upload_from_string, b"1", retry=None
        )
    with pytest.raises(api.NotFound):
        await asyncio.to_thread(_bucket().blob("absent").download_as_bytes)


async def test_injected_failures_then_recovery(
    emulator: GcsEmulator, server: RunningServer
) -> None:
    """fail(503, times=1) fails exactly the next upload, as ServiceUnavailable."""
    emulator.fail(503, operation="upload", times=1)
    blob = _bucket().blob("x")
    with pytest.raises(api.ServiceUnavailable):
        await asyncio.to_thread(blob.upload_from_string, b"1", retry=None)
    await asyncio.to_thread(blob.upload_from_string, b"2", retry=None)
    assert emulator.objects("results") == {"x": b"2"}


async def test_expected_token_is_enforced(emulator: GcsEmulator, server: RunningServer) -> None:
    """With expected_token set, a call without that bearer token gets 401."""
    emulator.expected_token = "tok"
    async with aiohttp.ClientSession() as session:
        url = f"{server.url}/storage/v1/b/results"
        async with session.get(url) as response:
            assert response.status == 401
        headers = {"Authorization": "Bearer tok"}
        async with session.get(url, headers=headers) as response:
            assert response.status == 200


async def test_resumable_session_reports_what_it_has(server: RunningServer) -> None:
    """A chunk at the wrong offset is not appended: 308 with the Range received so far."""
    base = f"{server.url}/upload/storage/v1/b/results/o"
    async with aiohttp.ClientSession() as session:
        async with session.post(
            base, params={"uploadType": "resumable"}, json={"name": "r.bin"}
        ) as started:
            location = started.headers["Location"]
        headers = {"Content-Range": "bytes 0-3/*"}
        async with session.put(location, data=b"abcd", headers=headers) as first:
            assert first.status == 308
            assert first.headers["Range"] == "bytes=0-3"
        headers = {"Content-Range": "bytes 10-11/12"}
        async with session.put(location, data=b"zz", headers=headers) as wrong:
            assert wrong.status == 308
            assert wrong.headers["Range"] == "bytes=0-3"
        headers = {"Content-Range": "bytes 4-5/6"}
        async with session.put(location, data=b"ef", headers=headers) as last:
            assert last.status == 200
            assert (await last.json())["size"] == "6"


async def test_media_upload_and_bucket_insert(emulator: GcsEmulator, server: RunningServer) -> None:
    """uploadType=media stores the body under ?name=; POST /b creates a bucket once."""
    async with aiohttp.ClientSession() as session:
        async with session.post(
            f"{server.url}/storage/v1/b", params={"project": "p"}, json={"name": "fresh"}
        ) as created:
            assert created.status == 200
        async with session.post(f"{server.url}/storage/v1/b", json={"name": "fresh"}) as again:
            assert again.status == 409
        async with session.post(
            f"{server.url}/upload/storage/v1/b/fresh/o",
            params={"uploadType": "media", "name": "m.txt"},
            data=b"media",
            headers={"Content-Type": "text/plain"},
        ) as response:
            assert response.status == 200
    assert emulator.objects("fresh") == {"m.txt": b"media"}


def test_pure_python_crc32c_matches_the_library() -> None:
    """The fallback CRC32C agrees with google-crc32c."""
    for data in (b"", b"a", os.urandom(1000)):
        assert _gcs_wire.crc32c_python(data) == int(google_crc32c.value(data))
