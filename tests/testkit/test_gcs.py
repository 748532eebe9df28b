"""The Cloud Storage emulator, driven over its JSON API with aiohttp, as the agent drives it."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import quote

import aiohttp
import google_crc32c
import pytest
from notraining_testkit.emulators import _gcs_wire
from notraining_testkit.emulators._server import RunningServer, served
from notraining_testkit.emulators.gcs import GcsEmulator


@pytest.fixture
def emulator() -> GcsEmulator:
    return GcsEmulator(buckets=("results",))


@pytest.fixture
async def server(emulator: GcsEmulator) -> AsyncIterator[RunningServer]:
    async with served(emulator.app()) as running:
        yield running


async def _get_json(url: str, **params: str) -> tuple[int, Any]:
    async with aiohttp.ClientSession() as session, session.get(url, params=params) as response:
        return response.status, await response.json()


async def test_media_download_serves_bytes_and_hashes(
    emulator: GcsEmulator, server: RunningServer
) -> None:
    """?alt=media (the agent's downloads) serves the bytes, content type and X-Goog-Hash."""
    data = b"\x89PNG data"
    emulator.put("results", "a dir/é.png", data, "image/png")
    url = f"{server.url}/storage/v1/b/results/o/{quote('a dir/é.png', safe='')}?alt=media"
    async with aiohttp.ClientSession() as session, session.get(url) as response:
        assert response.status == 200
        assert await response.read() == b"\x89PNG data"
        assert response.headers["Content-Type"] == "image/png"
        assert f"crc32c={_gcs_wire.crc32c(data)}" in response.headers["X-Goog-Hash"]
    assert len(emulator.calls_for("download")) == 1


async def test_object_metadata_and_listing(emulator: GcsEmulator, server: RunningServer) -> None:
    """Listing honours prefix, delimiter and pages; metadata carries size and hashes."""
    for name in ("p/a.txt", "p/b.txt", "p/sub/c.txt", "q/d.txt"):
        emulator.put("results", name, name.encode())
    objects = f"{server.url}/storage/v1/b/results/o"
    _, deep = await _get_json(objects, prefix="p/")
    assert [item["name"] for item in deep["items"]] == ["p/a.txt", "p/b.txt", "p/sub/c.txt"]
    _, first = await _get_json(objects, prefix="p/", delimiter="/", maxResults="1")
    assert [item["name"] for item in first["items"]] == ["p/a.txt"]
    assert first["prefixes"] == ["p/sub/"]
    _, second = await _get_json(
        objects, prefix="p/", delimiter="/", maxResults="1", pageToken=first["nextPageToken"]
    )
    assert [item["name"] for item in second["items"]] == ["p/b.txt"]
    status, blob = await _get_json(f"{objects}/{quote('p/a.txt', safe='')}")
    assert status == 200
    assert blob["size"] == "7"
    assert blob["crc32c"] == _gcs_wire.crc32c(b"p/a.txt")


async def test_missing_bucket_and_object(server: RunningServer) -> None:
    """Google's 404 shape for an unknown bucket (upload) and an unknown object (download)."""
    async with aiohttp.ClientSession() as session:
        async with session.post(
            f"{server.url}/upload/storage/v1/b/nope/o",
            params={"uploadType": "media", "name": "x"},
            data=b"1",
        ) as response:
            assert response.status == 404
            assert (await response.json())["error"]["code"] == 404
        url = f"{server.url}/storage/v1/b/results/o/absent?alt=media"
        async with session.get(url) as response:
            assert response.status == 404


async def test_injected_failures_then_recovery(
    emulator: GcsEmulator, server: RunningServer
) -> None:
    """fail(503, times=1) fails exactly the next upload, in Google's error shape."""
    emulator.fail(503, operation="upload", times=1)
    url = f"{server.url}/upload/storage/v1/b/results/o"
    params = {"uploadType": "media", "name": "x"}
    async with aiohttp.ClientSession() as session:
        async with session.post(url, params=params, data=b"1") as failed:
            assert failed.status == 503
            assert (await failed.json())["error"]["code"] == 503
        async with session.post(url, params=params, data=b"2") as ok:
            assert ok.status == 200
    assert emulator.objects("results") == {"x": b"2"}


async def test_other_upload_types_are_refused(server: RunningServer) -> None:
    """Only uploadType=media is served (what the agent sends); others get a 400."""
    url = f"{server.url}/upload/storage/v1/b/results/o"
    async with aiohttp.ClientSession() as session:
        for kind in ("multipart", "resumable", ""):
            async with session.post(url, params={"uploadType": kind, "name": "x"}) as response:
                assert response.status == 400


async def test_corrupt_checksums_lie_in_the_answer_only(
    emulator: GcsEmulator, server: RunningServer
) -> None:
    """corrupt_checksums=1: the next upload's answer has a wrong crc32c; the one after is right."""
    emulator.corrupt_checksums = 1
    url = f"{server.url}/upload/storage/v1/b/results/o"
    params = {"uploadType": "media", "name": "x"}
    async with aiohttp.ClientSession() as session:
        async with session.post(url, params=params, data=b"data") as first:
            assert (await first.json())["crc32c"] != _gcs_wire.crc32c(b"data")
        async with session.post(url, params=params, data=b"data") as second:
            assert (await second.json())["crc32c"] == _gcs_wire.crc32c(b"data")
    assert emulator.objects("results") == {"x": b"data"}


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
