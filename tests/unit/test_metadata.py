"""The metadata client: one recursive read, watches, guest attributes, and boot discovery."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import re
import socket
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import jwt
import pytest
from aiohttp import web
from aioresponses import aioresponses
from notraining_agent.errors import MetadataError
from notraining_agent.gce.discovery import discover
from notraining_agent.gce.instance import parse_instance
from notraining_agent.gce.metadata import MetadataClient
from notraining_agent.util.retry import Clock
from notraining_testkit.emulators._server import RunningServer, served
from notraining_testkit.emulators.metadata import MetadataEmulator

HOST = "metadata.test"
ROOT_URL = re.compile(r"^http://metadata\.test/computeMetadata/v1/.*$")
GOOGLE = {"Metadata-Flavor": "Google"}


class Sleeps(Clock):
    """An injected clock: records delays, advances a fake monotonic time, and runs hooks."""

    def __init__(self) -> None:
        self.delays: list[float] = []
        self.now = 1000.0
        self.hook: Any = None

    def monotonic(self) -> float:
        return self.now

    async def sleep(self, delay: float) -> None:
        self.delays.append(delay)
        self.now += delay
        if self.hook is not None:
            self.hook(len(self.delays))
        await asyncio.sleep(0)


def document(**instance: Any) -> dict[str, Any]:
    """A recursive metadata document like GCE's, with instance fields overridden."""
    base: dict[str, Any] = {
        "name": "vm-1",
        "id": 4518373217654321234,
        "hostname": "vm-1.c.p.internal",
        "zone": "projects/123/zones/us-east1-b",
        "networkInterfaces": [{"ip": "10.0.0.2", "accessConfigs": [{"externalIp": "1.2.3.4"}]}],
        "attributes": {"notraining-port": "80"},
        "serviceAccounts": {"default": {"email": "sa@p.iam.gserviceaccount.com", "scopes": ["s"]}},
        "preempted": "FALSE",
    }
    base.update(instance)
    return {"instance": base, "project": {"projectId": "p", "attributes": {"a": "b"}}}


def closed_port() -> int:
    """A loopback port nothing listens on (bound, then released)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@contextlib.asynccontextmanager
async def odd_server(status: int, body: str, headers: dict[str, str]) -> AsyncIterator[str]:
    """A loopback server answering every request the same way; yields its host:port."""

    async def answer(_: web.Request) -> web.Response:
        return web.Response(status=status, text=body, headers=headers)

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", answer)
    async with served(app) as running:
        yield running.netloc


@contextlib.asynccontextmanager
async def blackhole() -> AsyncIterator[str]:
    """A loopback server that accepts connections and never answers; yields host:port."""
    writers: list[asyncio.StreamWriter] = []

    async def hold(_: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writers.append(writer)

    server = await asyncio.start_server(hold, "127.0.0.1", 0)
    try:
        yield f"127.0.0.1:{server.sockets[0].getsockname()[1]}"
    finally:
        for writer in writers:
            writer.close()
        server.close()
        await server.wait_closed()


@pytest.fixture
def emulator() -> MetadataEmulator:
    return MetadataEmulator()


@pytest.fixture
async def server(emulator: MetadataEmulator) -> AsyncIterator[RunningServer]:
    async with served(emulator.app()) as running:
        yield running


@pytest.fixture
async def client(server: RunningServer) -> AsyncIterator[MetadataClient]:
    async with MetadataClient(server.netloc) as metadata:
        yield metadata


# -- construction and parsing -------------------------------------------------------------


def test_from_environ_prefers_host_then_ip_then_default() -> None:
    """GCE_METADATA_HOST wins over GCE_METADATA_IP, which wins over 169.254.169.254."""
    both = {"GCE_METADATA_HOST": "h:1", "GCE_METADATA_IP": "10.0.0.1:2"}
    assert MetadataClient.from_environ(both).host == "h:1"
    assert MetadataClient.from_environ({"GCE_METADATA_IP": "10.0.0.1:2"}).host == "10.0.0.1:2"
    assert MetadataClient.from_environ({}).base_url == "http://169.254.169.254/computeMetadata/v1/"
    assert MetadataClient("fd20:ce::254").host == "[fd20:ce::254]"


def test_parse_instance_reads_every_field() -> None:
    """The recursive document becomes InstanceInfo with a short zone and string id."""
    info = parse_instance(document())
    assert info.name == "vm-1"
    assert info.instance_id == "4518373217654321234"
    assert (info.project, info.zone) == ("p", "us-east1-b")
    assert (info.internal_ip, info.external_ip, info.ip) == ("10.0.0.2", "1.2.3.4", "1.2.3.4")
    assert info.instance_attributes == {"notraining-port": "80"}
    assert info.project_attributes == {"a": "b"}
    assert info.service_account_email == "sa@p.iam.gserviceaccount.com"
    assert info.scopes == ("s",)
    assert info.on_gce and not info.preempted


@pytest.mark.parametrize(
    "access", [[], [{}], [{"externalIp": ""}], None], ids=["none", "empty", "blank", "absent"]
)
def test_absent_external_ip_falls_back_to_internal(access: Any) -> None:
    """Without an external IP, external_ip is None and ip is the internal address."""
    nic: dict[str, Any] = {"ip": "10.0.0.2"}
    if access is not None:
        nic["accessConfigs"] = access
    info = parse_instance(document(networkInterfaces=[nic]))
    assert info.external_ip is None
    assert info.ip == "10.0.0.2"


@pytest.mark.parametrize(
    ("zone", "short"),
    [
        ("projects/123/zones/europe-west4-a", "europe-west4-a"),
        ("us-central1-f", "us-central1-f"),
        ("", None),
        ("projects/123/zones/", None),
        ("projects/123/zones/../../x", None),
        ("zones/us-east1-b/extra", None),
        ("US-EAST1-B", None),
    ],
)
def test_bad_zone_strings_become_none(zone: str, short: str | None) -> None:
    """Only projects/N/zones/ZONE (or a bare zone) is accepted; anything else is None."""
    assert parse_instance(document(zone=zone)).zone == short


def test_preempted_and_missing_fields() -> None:
    """preempted TRUE is read; a document without name or IP is a MetadataError."""
    assert parse_instance(document(preempted="TRUE")).preempted
    with pytest.raises(MetadataError, match="instance name or internal IP"):
        parse_instance(document(name=""))
    with pytest.raises(MetadataError):
        parse_instance({"instance": "garbage"})


# -- HTTP edge cases (aioresponses) -------------------------------------------------------


async def test_answer_without_flavor_header_is_refused() -> None:
    """An answer lacking Metadata-Flavor: Google is not from a metadata server."""
    body = json.dumps(document())
    async with odd_server(200, body, {}) as host, MetadataClient(host) as metadata:
        with pytest.raises(MetadataError, match="without 'Metadata-Flavor: Google'"):
            await metadata.read_instance()


async def test_404_is_a_metadata_error() -> None:
    """A 404 names the path and the status."""
    async with (
        odd_server(404, "<p>not found</p>", GOOGLE) as host,
        MetadataClient(host) as metadata,
    ):
        with pytest.raises(MetadataError, match=r"HTTP 404 for 'instance/name'.*not found"):
            await metadata.get("instance/name")


async def test_timeout_is_a_metadata_error() -> None:
    """A request that times out becomes a MetadataError naming the URL."""
    with aioresponses() as mocked:
        mocked.get(ROOT_URL, exception=TimeoutError())
        async with MetadataClient(HOST) as metadata:
            with pytest.raises(MetadataError, match=r"metadata\.test.*did not answer"):
                await metadata.get("instance/name")


async def test_invalid_json_is_a_metadata_error() -> None:
    """A recursive read that is not JSON is refused with advice."""
    async with odd_server(200, "not json", GOOGLE) as host, MetadataClient(host) as metadata:
        with pytest.raises(MetadataError, match="invalid JSON"):
            await metadata.read_instance()


# -- against the emulator -----------------------------------------------------------------


async def test_read_instance_is_one_recursive_read(
    client: MetadataClient, emulator: MetadataEmulator
) -> None:
    """read_instance makes a single recursive request and returns the emulator's VM."""
    info = await client.read_instance()
    assert (info.name, info.project, info.zone) == ("notraining-vm-1", "demo-project", "us-east1-b")
    assert (info.internal_ip, info.external_ip) == ("10.142.0.2", "203.0.113.10")
    assert info.instance_id == str(emulator.instance_id)
    [request] = emulator.requests
    assert request.path == "/computeMetadata/v1/"
    assert request.query["recursive"] == "true"
    assert request.headers["Metadata-Flavor"] == "Google"


async def test_proxy_variables_are_ignored(
    server: RunningServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """HTTP_PROXY pointing nowhere does not affect metadata requests (trust_env=False)."""
    dead = f"http://127.0.0.1:{closed_port()}"
    for name in ("HTTP_PROXY", "http_proxy", "ALL_PROXY"):
        monkeypatch.setenv(name, dead)
    monkeypatch.delenv("NO_PROXY", raising=False)
    monkeypatch.delenv("no_proxy", raising=False)
    async with MetadataClient(server.netloc) as metadata:
        assert await metadata.get("instance/name") == "notraining-vm-1"


async def test_watch_sees_preemption(client: MetadataClient, emulator: MetadataEmulator) -> None:
    """The first value is the current one; set_preempted(True) yields TRUE."""
    values = client.watch("instance/preempted", timeout_sec=5)
    async with asyncio.timeout(2):
        assert await anext(values) == "FALSE"
        emulator.set_preempted(True)
        assert await anext(values) == "TRUE"
    await values.aclose()


async def test_watch_sees_an_attribute_appear(
    client: MetadataClient, emulator: MetadataEmulator
) -> None:
    """A recursive watch of attributes/ yields the JSON with the new key."""
    values = client.watch("instance/attributes", recursive=True, timeout_sec=5)
    async with asyncio.timeout(2):
        assert json.loads(await anext(values)) == {}
        emulator.set_instance_attribute("notraining-job", '{"x": 1}')
        assert json.loads(await anext(values)) == {"notraining-job": '{"x": 1}'}
    await values.aclose()
    assert emulator.requests[-1].path == "/computeMetadata/v1/instance/attributes/"


async def test_watch_sends_each_answers_etag_and_skips_timeouts(
    client: MetadataClient, emulator: MetadataEmulator
) -> None:
    """Every poll carries the last ETag; a poll that times out unchanged yields nothing."""
    values = client.watch("instance/preempted", timeout_sec=0.1)
    async with asyncio.timeout(2):
        assert await anext(values) == "FALSE"
        change = asyncio.get_running_loop().call_later(0.35, emulator.set_preempted, True)
        assert await anext(values) == "TRUE"
        change.cancel()
    await values.aclose()
    polls = emulator.requests_for("/computeMetadata/v1/instance/preempted")
    assert polls[0].query["last_etag"] == "0"
    assert polls[0].query["timeout_sec"] == "0.1"
    first_etag = polls[1].query["last_etag"]
    assert len(polls) >= 3  # at least one poll timed out in between
    assert all(p.query["last_etag"] == first_etag for p in polls[1:])
    assert all(p.query["wait_for_change"] == "true" for p in polls)


async def test_watch_reconnects_with_bounded_backoff(
    server: RunningServer, emulator: MetadataEmulator
) -> None:
    """Errors never end a watch: it backs off (capped) and resumes when the server is back."""
    sleeps = Sleeps()
    sleeps.hook = lambda n: emulator.set_down(n < 8)
    async with MetadataClient(server.netloc, clock=sleeps) as metadata:
        values = metadata.watch("instance/preempted", timeout_sec=5)
        emulator.set_down(True)
        async with asyncio.timeout(2):
            assert await anext(values) == "FALSE"
            emulator.drop_watches()
            emulator.set_preempted(True)
            assert await anext(values) == "TRUE"
        await values.aclose()
    assert sleeps.delays == [0.5, 1.0, 2.0, 4.0, 8.0, 16.0, 30.0, 30.0]


async def test_guest_attribute_is_written(
    client: MetadataClient, emulator: MetadataEmulator
) -> None:
    """put_guest_attribute PUTs the value under instance/guest-attributes/."""
    await client.put_guest_attribute("notraining/state", "idle")
    await client.put_guest_attribute("notraining/state", "busy")
    assert emulator.guest_attribute_history("notraining/state") == ["idle", "busy"]
    with pytest.raises(ValueError, match="namespace/name"):
        await client.put_guest_attribute("../state", "x")


async def test_guest_attribute_refusal_is_logged_once(
    client: MetadataClient, emulator: MetadataEmulator, caplog: pytest.LogCaptureFixture
) -> None:
    """With guest attributes disabled (403), one warning is logged and nothing raises."""
    emulator.guest_attributes_enabled = False
    with caplog.at_level(logging.DEBUG, logger="notraining_agent.gce.metadata"):
        for state in ("starting", "idle", "busy"):
            await client.put_guest_attribute("notraining/state", state)
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1
    assert "enable-guest-attributes" in warnings[0].getMessage()


async def test_guest_attribute_unreachable_server_is_not_fatal(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A metadata server that does not answer is logged, never raised."""
    async with MetadataClient(f"127.0.0.1:{closed_port()}") as metadata:
        with caplog.at_level(logging.WARNING, logger="notraining_agent.gce.metadata"):
            await metadata.put_guest_attribute("notraining/state", "idle")
    assert "Could not write guest attribute" in caplog.text


async def test_identity_token(client: MetadataClient, emulator: MetadataEmulator) -> None:
    """identity_token asks format=full for the audience and returns the JWT."""
    token = await client.identity_token("https://saturno.example")
    claims = jwt.decode(
        token, emulator.identity_key, algorithms=["HS256"], audience="https://saturno.example"
    )
    assert claims["google"]["compute_engine"]["project_id"] == "demo-project"


# -- discover -----------------------------------------------------------------------------


async def test_discover_local_mode_when_nothing_answers(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Off GCE, a silent metadata address means local mode, said in one log line."""
    dmi = tmp_path / "product_name"
    dmi.write_text("Standard PC (Q35 + ICH9, 2009)\n")
    async with blackhole() as host:
        with caplog.at_level(logging.INFO, logger="notraining_agent.gce.metadata"):
            client, info = await discover(
                {"GCE_METADATA_IP": host}, dmi_path=dmi, probe_timeout=0.2
            )
    assert client is None
    assert not info.on_gce
    assert (info.project, info.zone) == (None, None)
    assert info.name == socket.gethostname()
    [line] = [r.getMessage() for r in caplog.records]
    assert "Local mode" in line
    assert "self_stop forced to none" in line


async def test_discover_on_gce_reads_the_instance(tmp_path: Path, server: RunningServer) -> None:
    """When DMI says GCE, discover returns an open client and the instance."""
    dmi = tmp_path / "product_name"
    dmi.write_text("Google Compute Engine\n")
    client, info = await discover({"GCE_METADATA_IP": server.netloc}, dmi_path=dmi)
    assert client is not None
    try:
        assert info.on_gce and info.name == "notraining-vm-1"
        assert await client.get("instance/zone") == "projects/123456789012/zones/us-east1-b"
    finally:
        await client.close()


async def test_discover_retries_until_the_server_answers(
    tmp_path: Path, server: RunningServer, emulator: MetadataEmulator
) -> None:
    """With GCE_METADATA_HOST set, a 503 at boot is retried with growing delays."""
    sleeps = Sleeps()
    sleeps.hook = lambda n: emulator.set_down(n < 3)
    emulator.set_down(True)
    client, info = await discover(
        {"GCE_METADATA_HOST": server.netloc},
        dmi_path=tmp_path / "absent",
        clock=sleeps,
    )
    assert client is not None
    await client.close()
    assert info.name == "notraining-vm-1"
    assert sleeps.delays == [0.5, 1.0, 2.0]


async def test_discover_gives_up_after_the_boot_deadline(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """On GCE, no answer for boot_deadline raises MetadataError naming the URL; delays cap."""
    dmi = tmp_path / "product_name"
    dmi.write_text("Google Compute Engine")
    sleeps = Sleeps()
    host = f"127.0.0.1:{closed_port()}"
    with (
        caplog.at_level(logging.WARNING, logger="notraining_agent.gce.metadata"),
        pytest.raises(MetadataError, match=rf"http://{host}/computeMetadata/v1/.*120 s"),
    ):
        await discover({"GCE_METADATA_IP": host}, dmi_path=dmi, clock=sleeps)
    assert max(sleeps.delays) == 8.0
    assert sum(sleeps.delays) == pytest.approx(120.0)
    assert "attempt 1 failed" in caplog.text
    assert f"attempt {len(sleeps.delays)} failed" in caplog.text
