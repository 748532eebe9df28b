"""TokenSource: service-account tokens from the discovered metadata server, for every client.

Tokens are fetched by the agent's own MetadataClient (no google-auth on that path);
google-cloud-compute gets google-auth's public Credentials type, refreshed by the same
source from its worker thread. Servers are real loopback ones: the metadata emulator,
or a small aiohttp app where a failure must be scripted.
"""

from __future__ import annotations

import asyncio
import datetime
from collections.abc import AsyncIterator
from pathlib import Path

import notraining_agent
import pytest
from aiohttp import web
from google.auth import credentials as google_credentials
from google.auth import exceptions as google_exceptions
from google.auth.transport.requests import Request
from notraining_agent.errors import MetadataError
from notraining_agent.gce.credentials import TokenSource
from notraining_agent.gce.metadata import MetadataClient
from notraining_testkit.emulators._server import served
from notraining_testkit.emulators.metadata import DEFAULT_ACCESS_TOKEN, MetadataEmulator

from tests.fakes import FakeClock

TOKEN_PATH = "/computeMetadata/v1/instance/service-accounts/default/token"


@pytest.fixture
def emulator() -> MetadataEmulator:
    return MetadataEmulator()


@pytest.fixture
async def metadata(emulator: MetadataEmulator) -> AsyncIterator[MetadataClient]:
    async with served(emulator.app()) as running, MetadataClient(running.netloc) as client:
        yield client


def scripted(answers: list[int]) -> web.Application:
    """A metadata server answering the token path with ``answers`` in turn, then a token."""

    async def token(request: web.Request) -> web.Response:
        status = answers.pop(0) if answers else 200
        body = {"access_token": "tok-after", "expires_in": 3599, "token_type": "Bearer"}
        headers = {"Metadata-Flavor": "Google"}
        if status != 200:
            return web.Response(status=status, text="busy", headers=headers)
        return web.json_response(body, headers=headers)

    app = web.Application()
    app.router.add_get(TOKEN_PATH, token)
    return app


async def test_token_comes_from_the_discovered_metadata_server(
    metadata: MetadataClient, emulator: MetadataEmulator
) -> None:
    """The token is the emulator's, asked for with Metadata-Flavor: Google."""
    tokens = TokenSource(metadata)
    assert tokens.host == metadata.host
    assert await tokens.token() == DEFAULT_ACCESS_TOKEN
    assert emulator.requests_for(TOKEN_PATH)[0].headers["Metadata-Flavor"] == "Google"


async def test_tokens_are_cached_until_near_expiry(
    metadata: MetadataClient, emulator: MetadataEmulator
) -> None:
    """A token valid for an hour is fetched once; one within the margin is refetched."""
    tokens = TokenSource(metadata)
    await tokens.token()
    await tokens.token()
    assert emulator.token_requests == 1
    emulator.token_lifetime = 30  # below the 300 s margin: every call refreshes
    short = TokenSource(metadata)
    await short.token()
    await short.token()
    assert emulator.token_requests == 3


async def test_concurrent_callers_share_one_refresh(
    metadata: MetadataClient, emulator: MetadataEmulator
) -> None:
    """Five callers at once cause a single token request."""
    tokens = TokenSource(metadata)
    results = await asyncio.gather(*(tokens.token() for _ in range(5)))
    assert set(results) == {DEFAULT_ACCESS_TOKEN}
    assert emulator.token_requests == 1


async def test_transient_answers_are_retried() -> None:
    """A 503 then a 200: the policy tries again (its wait through the clock) and gets the token."""
    clock = FakeClock()
    async with served(scripted([503])) as running, MetadataClient(running.netloc) as client:
        assert await TokenSource(client, clock=clock).token() == "tok-after"
    assert clock.sleeps == [0.5]


async def test_vm_without_service_account_is_a_metadata_error() -> None:
    """No default service account (404) is final: one try, then a MetadataError with advice."""
    emulator = MetadataEmulator(service_account=False)
    clock = FakeClock()
    async with served(emulator.app()) as running, MetadataClient(running.netloc) as client:
        with pytest.raises(MetadataError, match="service account attached"):
            await TokenSource(client, clock=clock).token()
    assert clock.sleeps == []


async def test_unreachable_server_gives_up_after_the_attempts(
    metadata: MetadataClient, emulator: MetadataEmulator
) -> None:
    """A metadata server that stops answering: three tries, then a MetadataError."""
    emulator.set_down(True)
    clock = FakeClock()
    with pytest.raises(MetadataError, match="failed 3 times"):
        await TokenSource(metadata, clock=clock).token()
    assert len(clock.sleeps) == 2


async def test_google_auth_credentials_refresh_from_the_source(
    metadata: MetadataClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A client library's before_request (in its thread) gets our token, whatever its proxy says.

    The credentials are google-auth's public Credentials type; their refresh ignores the
    transport it is handed (a dead proxy is set) and asks the TokenSource on the loop.
    """
    monkeypatch.setenv("HTTP_PROXY", "http://127.0.0.1:9")
    creds = TokenSource(metadata).credentials
    assert isinstance(creds, google_credentials.Credentials)
    assert creds.universe_domain == "googleapis.com"
    headers: dict[str, str] = {}
    await asyncio.to_thread(
        creds.before_request, Request(), "POST", "https://compute.example/x", headers
    )
    assert headers["authorization"] == f"Bearer {DEFAULT_ACCESS_TOKEN}"
    now = datetime.datetime.now(datetime.UTC).replace(tzinfo=None)
    assert creds.expiry is not None
    assert creds.expiry > now + datetime.timedelta(minutes=50)


async def test_refresh_on_the_loop_thread_is_refused(metadata: MetadataClient) -> None:
    """Refreshing on the loop would deadlock it: a RefreshError says to use a thread."""
    creds = TokenSource(metadata).credentials
    with pytest.raises(google_exceptions.RefreshError, match="worker thread"):
        creds.refresh(Request())


async def test_refresh_failure_is_a_google_auth_error() -> None:
    """No token to be had: the client library sees google-auth's RefreshError."""
    emulator = MetadataEmulator(service_account=False)
    async with served(emulator.app()) as running, MetadataClient(running.netloc) as client:
        creds = TokenSource(client).credentials
        with pytest.raises(google_exceptions.RefreshError, match="service account attached"):
            await asyncio.to_thread(creds.refresh, Request())


def test_no_private_google_auth_names_in_the_package() -> None:
    """The agent reaches google-auth through its public API only."""
    root = Path(notraining_agent.__file__).parent
    offenders = [
        str(path.relative_to(root))
        for path in root.rglob("*.py")
        if "_metadata._" in path.read_text() or "_universe_domain_cached" in path.read_text()
    ]
    assert offenders == []
