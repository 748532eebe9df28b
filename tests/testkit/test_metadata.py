"""The metadata emulator answers like the GCE metadata server, for our client and google-auth."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import jwt
import pytest
from google.auth import compute_engine
from google.auth.compute_engine import _metadata
from google.auth.transport.requests import Request
from notraining_testkit.emulators._server import RunningServer, served
from notraining_testkit.emulators.metadata import DEFAULT_ACCESS_TOKEN, MetadataEmulator

FLAVOR = {"Metadata-Flavor": "Google"}
V1 = "/computeMetadata/v1/"


@pytest.fixture
def emulator() -> MetadataEmulator:
    return MetadataEmulator(instance_attributes={"notraining-port": "8080"})


@pytest.fixture
async def server(emulator: MetadataEmulator) -> AsyncIterator[RunningServer]:
    async with served(emulator.app()) as running:
        yield running


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


async def fetch(
    http: aiohttp.ClientSession,
    server: RunningServer,
    path: str,
    headers: dict[str, str] | None = None,
    *,
    method: str = "GET",
    data: str | None = None,
) -> tuple[int, str, Any]:
    """One request; returns status, body and the response headers."""
    hdrs = FLAVOR if headers is None else headers
    async with http.request(method, server.url + path, headers=hdrs, data=data) as response:
        return response.status, await response.text(), response.headers


async def test_requests_without_flavor_header_are_refused(
    http: aiohttp.ClientSession, server: RunningServer
) -> None:
    """No Metadata-Flavor (or the wrong one) is 403, and the answer still says Google."""
    for headers in ({}, {"Metadata-Flavor": "Other"}):
        status, _, hdrs = await fetch(http, server, V1 + "instance/name", headers)
        assert status == 403
        assert hdrs["Metadata-Flavor"] == "Google"
        assert hdrs["ETag"]


async def test_forwarded_requests_are_refused(
    http: aiohttp.ClientSession, server: RunningServer
) -> None:
    """A request relayed by a proxy (X-Forwarded-For) is refused like on GCE."""
    headers = {**FLAVOR, "X-Forwarded-For": "203.0.113.9"}
    status, _, _ = await fetch(http, server, V1 + "instance/name", headers)
    assert status == 403


async def test_directories_list_children_with_and_without_slash(
    http: aiohttp.ClientSession, server: RunningServer
) -> None:
    """Root and directories list one child a line, sub-directories ending with a slash."""
    assert (await fetch(http, server, "/"))[1] == "0.1/\ncomputeMetadata/\n"
    assert (await fetch(http, server, V1))[1] == "instance/\nproject/\nuniverse/\n"
    for path in ("instance/service-accounts/default", "instance/service-accounts/default/"):
        status, body, hdrs = await fetch(http, server, V1 + path)
        assert status == 200
        assert body == "aliases\nemail\nidentity\nscopes\ntoken\n"
        assert hdrs["Content-Type"].startswith("application/text")


async def test_leaves_answer_text_or_json(
    http: aiohttp.ClientSession, server: RunningServer, emulator: MetadataEmulator
) -> None:
    """Leaves answer text by default, JSON with alt=json, and lists one item a line."""
    assert (await fetch(http, server, V1 + "instance/zone"))[1] == (
        "projects/123456789012/zones/us-east1-b"
    )
    assert (await fetch(http, server, V1 + "instance/id?alt=json"))[1] == str(emulator.instance_id)
    scopes = (await fetch(http, server, V1 + "instance/service-accounts/default/scopes"))[1]
    assert scopes.splitlines() == list(emulator.scopes)
    assert (await fetch(http, server, V1 + "instance/name/"))[0] == 404
    assert (await fetch(http, server, V1 + "instance/nope"))[0] == 404
    assert (await fetch(http, server, V1 + "project?alt=json"))[0] == 400


async def test_recursive_json_uses_camel_case_but_keeps_attribute_keys(
    http: aiohttp.ClientSession, server: RunningServer, emulator: MetadataEmulator
) -> None:
    """recursive=true answers GCE's camelCase JSON; attribute names stay as written."""
    status, body, hdrs = await fetch(http, server, V1 + "?recursive=true")
    assert status == 200
    assert hdrs["Content-Type"].startswith("application/json")
    doc = json.loads(body)
    nic = doc["instance"]["networkInterfaces"][0]
    assert nic["ip"] == emulator.internal_ip
    assert nic["accessConfigs"][0]["externalIp"] == emulator.external_ip
    assert doc["instance"]["attributes"] == {"notraining-port": "8080"}
    assert doc["instance"]["id"] == emulator.instance_id
    assert doc["project"] == {
        "attributes": {},
        "numericProjectId": emulator.numeric_project_id,
        "projectId": "demo-project",
    }
    account = doc["instance"]["serviceAccounts"]["default"]
    assert set(account) == {"aliases", "email", "scopes"}  # token and identity are not data


async def test_recursive_text_flattens_paths(
    http: aiohttp.ClientSession, server: RunningServer
) -> None:
    """recursive=true&alt=text gives one 'path value' line per leaf."""
    _, body, _ = await fetch(
        http, server, V1 + "instance/network-interfaces/?recursive=true&alt=text"
    )
    assert "0/access-configs/0/external-ip 203.0.113.10\n" in body
    assert "0/ip 10.142.0.2\n" in body


async def test_no_external_ip_means_no_access_config(http: aiohttp.ClientSession) -> None:
    """A VM without an external IP has an empty accessConfigs list."""
    async with served(MetadataEmulator(external_ip=None).app()) as server:
        _, body, _ = await fetch(http, server, V1 + "instance/network-interfaces/0/?recursive=true")
    assert json.loads(body)["accessConfigs"] == []


async def test_token_endpoint_returns_a_bearer_token(
    http: aiohttp.ClientSession, server: RunningServer, emulator: MetadataEmulator
) -> None:
    """service-accounts/default/token answers google-auth's JSON and counts the calls."""
    status, body, _ = await fetch(http, server, V1 + "instance/service-accounts/default/token")
    assert status == 200
    assert json.loads(body) == {
        "access_token": DEFAULT_ACCESS_TOKEN,
        "expires_in": emulator.token_lifetime,
        "token_type": "Bearer",
    }
    assert emulator.token_requests == 1


async def test_identity_token_is_a_jwt_with_compute_engine_claims(
    http: aiohttp.ClientSession, server: RunningServer, emulator: MetadataEmulator
) -> None:
    """identity?format=full is a JWT for the audience with the instance's claims; 400 without."""
    path = V1 + "instance/service-accounts/default/identity"
    assert (await fetch(http, server, path))[0] == 400
    status, token, _ = await fetch(http, server, path + "?audience=https://saturno&format=full")
    assert status == 200
    claims = jwt.decode(
        token, emulator.identity_key, algorithms=["HS256"], audience="https://saturno"
    )
    assert claims["iss"] == "https://accounts.google.com"
    assert claims["google"]["compute_engine"]["instance_name"] == emulator.name
    assert claims["google"]["compute_engine"]["zone"] == "us-east1-b"


async def test_wait_for_change_answers_at_once_for_a_stale_etag(
    http: aiohttp.ClientSession, server: RunningServer
) -> None:
    """A last_etag that differs from the current ETag gets the value immediately: nothing
    changes and the watch's timeout_sec is an hour away, so the answer can come from nothing
    else (were it held, pytest's timeout would end the test long before)."""
    status, body, hdrs = await fetch(
        http, server, V1 + "instance/preempted?wait_for_change=true&last_etag=0&timeout_sec=3600"
    )
    assert (status, body) == (200, "FALSE")
    assert hdrs["ETag"] != "0"


async def test_wait_for_change_times_out_with_the_same_etag(
    http: aiohttp.ClientSession, server: RunningServer
) -> None:
    """Without a change, the answer comes after timeout_sec with the unchanged ETag: not
    before it (the clock starts before the request is sent), and at all although the
    emulator's own cap is 300 s (pytest's timeout would end a held test first)."""
    etag = (await fetch(http, server, V1 + "instance/preempted"))[2]["ETag"]
    timeout = 0.2
    query = f"?wait_for_change=true&last_etag={etag}&timeout_sec={timeout}"
    started = time.monotonic()
    status, body, hdrs = await fetch(http, server, V1 + "instance/preempted" + query)
    assert (status, body, hdrs["ETag"]) == (200, "FALSE", etag)
    assert time.monotonic() - started >= timeout


async def test_attribute_change_wakes_a_recursive_watch(
    http: aiohttp.ClientSession, server: RunningServer, emulator: MetadataEmulator
) -> None:
    """A new instance attribute ends a hanging recursive watch of attributes/."""
    path = V1 + "instance/attributes/?recursive=true"
    etag = (await fetch(http, server, path))[2]["ETag"]
    watch = asyncio.create_task(
        fetch(http, server, path + f"&wait_for_change=true&last_etag={etag}&timeout_sec=5")
    )
    while len(emulator.requests_for(V1 + "instance/attributes/")) < 2:  # noqa: ASYNC110 - no event
        await asyncio.sleep(0.005)  # until the watch has reached the emulator
    emulator.set_instance_attribute("notraining-job", '{"a": 1}')
    status, body, hdrs = await watch
    assert status == 200
    assert json.loads(body)["notraining-job"] == '{"a": 1}'
    assert hdrs["ETag"] != etag


async def test_watching_a_missing_key_is_404(
    http: aiohttp.ClientSession, server: RunningServer
) -> None:
    """A key that does not exist cannot be watched (GCE answers 404)."""
    status, _, _ = await fetch(http, server, V1 + "instance/attributes/nope?wait_for_change=true")
    assert status == 404


async def test_guest_attributes_are_stored_and_can_be_disabled(
    http: aiohttp.ClientSession, server: RunningServer, emulator: MetadataEmulator
) -> None:
    """PUT stores a guest attribute and records its history; disabled answers 403."""
    path = V1 + "instance/guest-attributes/notraining/state"
    for value in ("starting", "idle"):
        assert (await fetch(http, server, path, method="PUT", data=value))[0] == 200
    assert (await fetch(http, server, path))[1] == "idle"
    assert emulator.guest_attribute_history("notraining/state") == ["starting", "idle"]
    emulator.guest_attributes_enabled = False
    assert (await fetch(http, server, path, method="PUT", data="busy"))[0] == 403
    assert emulator.guest_attribute("notraining/state") == "idle"


async def test_down_answers_503_or_drops_the_connection(
    http: aiohttp.ClientSession, server: RunningServer, emulator: MetadataEmulator
) -> None:
    """set_down answers 503, or with reset cuts the connection without an answer."""
    emulator.set_down(True)
    assert (await fetch(http, server, V1 + "instance/name"))[0] == 503
    emulator.set_down(True, reset=True)
    with pytest.raises(aiohttp.ClientError):
        await fetch(http, server, V1 + "instance/name")
    emulator.set_down(False)
    assert (await fetch(http, server, V1 + "instance/name"))[1] == emulator.name


async def test_drop_watches_cuts_hanging_connections(
    server: RunningServer, emulator: MetadataEmulator
) -> None:
    """drop_watches closes a long poll's connection: the client reads EOF, not an answer."""
    reader, writer = await asyncio.open_connection(server.host, server.port)
    writer.write(
        f"GET {V1}instance/preempted?wait_for_change=true HTTP/1.1\r\n"
        f"Host: {server.netloc}\r\nMetadata-Flavor: Google\r\n\r\n".encode()
    )
    await writer.drain()
    await asyncio.sleep(0.05)
    assert emulator.drop_watches() == 1
    assert await asyncio.wait_for(reader.read(), 2) == b""
    writer.close()
    await writer.wait_closed()


async def test_request_log_records_paths_and_headers(
    http: aiohttp.ClientSession, server: RunningServer, emulator: MetadataEmulator
) -> None:
    """Every request is recorded with its path, query and headers."""
    await fetch(http, server, V1 + "instance/name?alt=text")
    [recorded] = emulator.requests_for(V1 + "instance/name")
    assert recorded.query == {"alt": "text"}
    assert recorded.headers["Metadata-Flavor"] == "Google"


async def test_google_auth_ping_and_id_token_work_unchanged(
    server: RunningServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """google-auth's own ping and IDTokenCredentials work against the emulator.

    google-auth read GCE_METADATA_HOST when it was imported, so the test sets its
    module constant; ping reads GCE_METADATA_IP per call, so that is set in the env.
    """
    monkeypatch.setattr(_metadata, "_GCE_METADATA_HOST", server.netloc)
    monkeypatch.setenv("GCE_METADATA_IP", server.netloc)
    request = Request()
    assert await asyncio.to_thread(_metadata.ping, request)
    creds = await asyncio.to_thread(
        compute_engine.IDTokenCredentials,
        request,
        "https://saturno",
        use_metadata_identity_endpoint=True,
    )
    await asyncio.to_thread(creds.refresh, request)
    assert creds.token is not None
    assert jwt.decode(creds.token, options={"verify_signature": False})["aud"] == "https://saturno"
