"""The Secret Manager emulator answers versions:access like the real v1 REST API."""

from __future__ import annotations

import base64
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import google_crc32c
import pytest
from notraining_testkit.emulators._server import RunningServer, served
from notraining_testkit.emulators.secretmanager import SecretManagerEmulator

TOKEN = "test-token"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
REF = "/v1/projects/demo-project/secrets/jwt/versions/"


@pytest.fixture
def emulator() -> SecretManagerEmulator:
    emulator = SecretManagerEmulator(expected_token=TOKEN)
    emulator.add_secret("jwt", "first")
    emulator.add_secret("projects/demo-project/secrets/jwt/versions/2", "second")
    return emulator


@pytest.fixture
async def server(emulator: SecretManagerEmulator) -> AsyncIterator[RunningServer]:
    async with served(emulator.app()) as running:
        yield running


async def access(
    server: RunningServer, path: str, headers: dict[str, str] | None = None
) -> tuple[int, Any]:
    """GET path; returns the status and the JSON body."""
    async with (
        aiohttp.ClientSession() as http,
        http.get(server.url + path, headers=AUTH if headers is None else headers) as response,
    ):
        return response.status, await response.json()


async def test_access_returns_base64_payload_with_crc32c(server: RunningServer) -> None:
    """A version answers its name, base64 data and the CRC32C as a decimal string."""
    status, body = await access(server, REF + "1:access")
    assert status == 200
    assert body["name"] == "projects/123456789012/secrets/jwt/versions/1"
    data = base64.b64decode(body["payload"]["data"])
    assert data == b"first"
    assert body["payload"]["dataCrc32c"] == str(google_crc32c.value(data))


async def test_latest_and_numeric_project_resolve(server: RunningServer) -> None:
    """'latest' is the newest version, and the project may be named by number."""
    status, body = await access(
        server, "/v1/projects/123456789012/secrets/jwt/versions/latest:access"
    )
    assert status == 200
    assert body["name"].endswith("/versions/2")
    assert base64.b64decode(body["payload"]["data"]) == b"second"


@pytest.mark.parametrize(
    ("headers", "status"),
    [({}, 401), ({"Authorization": "Bearer wrong"}, 401), ({"Authorization": TOKEN}, 401)],
)
async def test_bad_or_missing_token_is_401(
    server: RunningServer, headers: dict[str, str], status: int
) -> None:
    """Only 'Bearer <expected token>' is accepted."""
    got, body = await access(server, REF + "1:access", headers)
    assert got == status
    assert body["error"]["status"] == "UNAUTHENTICATED"


async def test_unknown_secret_version_or_project_is_404(server: RunningServer) -> None:
    """Unknown secrets, versions and projects answer 404 NOT_FOUND."""
    for path in (
        "/v1/projects/demo-project/secrets/nope/versions/1:access",
        REF + "3:access",
        "/v1/projects/other/secrets/jwt/versions/1:access",
    ):
        status, body = await access(server, path)
        assert (status, body["error"]["status"]) == (404, "NOT_FOUND")


async def test_denied_secret_is_403(server: RunningServer, emulator: SecretManagerEmulator) -> None:
    """deny() models a service account without secretAccessor: 403 PERMISSION_DENIED."""
    emulator.deny("jwt")
    status, body = await access(server, REF + "1:access")
    assert (status, body["error"]["status"]) == (403, "PERMISSION_DENIED")


async def test_injected_failures_and_call_log(
    server: RunningServer, emulator: SecretManagerEmulator
) -> None:
    """fail_next answers the next requests with the given status; every call is recorded."""
    emulator.fail_next(1, 503)
    assert (await access(server, REF + "1:access"))[0] == 503
    assert (await access(server, REF + "1:access"))[0] == 200
    assert [call.status for call in emulator.calls] == [503, 200]
    assert emulator.calls[0].headers["Authorization"] == f"Bearer {TOKEN}"


def test_add_secret_refuses_another_project() -> None:
    """add_secret with a full name must name the emulator's project."""
    with pytest.raises(ValueError, match="demo-project"):
        SecretManagerEmulator().add_secret("projects/other/secrets/s", "x")
