"""TokenSource: the real google-auth compute_engine.Credentials, refreshed against the emulator.

How the emulator's URL reaches google-auth: google-auth builds metadata URLs from
``_metadata._GCE_METADATA_HOST``, read from the environment once at its import, so
setting ``GCE_METADATA_HOST`` in a test is too late. ``TokenSource(host)`` instead
hands google-auth a transport that sends every ``/computeMetadata/`` request to
``host`` (see ``agent/gce/credentials.py``), so these tests pass the emulator's
``host:port`` explicitly and never touch google-auth's module state. One test sets
that constant to an unresolvable name to prove it is not used.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest
from google.auth import compute_engine
from google.auth.compute_engine import _metadata
from google.auth.transport.requests import Request
from notraining_agent.errors import MetadataError
from notraining_agent.gce.credentials import TokenSource
from notraining_testkit.emulators._server import RunningServer, served
from notraining_testkit.emulators.metadata import DEFAULT_ACCESS_TOKEN, MetadataEmulator

TOKEN_PATH = "/computeMetadata/v1/instance/service-accounts/default/token"


@pytest.fixture
def emulator() -> MetadataEmulator:
    return MetadataEmulator()


@pytest.fixture
async def server(emulator: MetadataEmulator) -> AsyncIterator[RunningServer]:
    async with served(emulator.app()) as running:
        yield running


async def test_token_is_read_without_google_auth(
    server: RunningServer, emulator: MetadataEmulator
) -> None:
    """token() asks the metadata server itself, with Metadata-Flavor, building no credentials."""
    tokens = TokenSource(server.netloc)
    assert await tokens.token() == DEFAULT_ACCESS_TOKEN
    assert tokens._credentials is None  # google-auth is left for the stop (17 MiB, 0.25 s)
    token_calls = emulator.requests_for(TOKEN_PATH)
    assert token_calls[0].headers["Metadata-Flavor"] == "Google"


async def test_credentials_start_with_the_token_already_read(
    server: RunningServer, emulator: MetadataEmulator
) -> None:
    """Credentials built after token() reuse it: a stop needs no metadata call (it may be down)."""
    tokens = TokenSource(server.netloc)
    await tokens.token()
    headers: dict[str, str] = {}
    await asyncio.to_thread(
        tokens.credentials.before_request, Request(), "POST", "https://compute.example/x", headers
    )
    assert headers["authorization"] == f"Bearer {DEFAULT_ACCESS_TOKEN}"
    assert emulator.token_requests == 1


async def test_real_credentials_refresh_against_the_emulator(
    server: RunningServer, emulator: MetadataEmulator
) -> None:
    """google-auth's compute_engine.Credentials get the emulator's token and account."""
    creds = TokenSource(server.netloc).credentials
    assert isinstance(creds, compute_engine.Credentials)
    await asyncio.to_thread(creds.refresh, None)
    assert creds.token == DEFAULT_ACCESS_TOKEN
    assert creds.service_account_email == emulator.service_account_email
    assert await asyncio.to_thread(lambda: creds.universe_domain) == "googleapis.com"


async def test_tokens_are_cached_until_near_expiry(
    server: RunningServer, emulator: MetadataEmulator
) -> None:
    """A token valid for an hour is fetched once; one within the margin is refetched."""
    tokens = TokenSource(server.netloc)
    await tokens.token()
    await tokens.token()
    assert emulator.token_requests == 1
    emulator.token_lifetime = 30  # below the 60 s margin: every call refreshes
    short = TokenSource(server.netloc)
    await short.token()
    await short.token()
    assert emulator.token_requests == 3


async def test_concurrent_callers_share_one_refresh(
    server: RunningServer, emulator: MetadataEmulator
) -> None:
    """Five callers at once cause a single token request."""
    tokens = TokenSource(server.netloc)
    results = await asyncio.gather(*(tokens.token() for _ in range(5)))
    assert set(results) == {DEFAULT_ACCESS_TOKEN}
    assert emulator.token_requests == 1


async def test_refresh_by_another_library_uses_the_routed_host(
    server: RunningServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A client library refreshing with its own transport still reaches our host, not google-auth's.

    google-auth's host constant is pointed at an unresolvable name and a dead proxy is
    set: the refresh (what google-cloud-compute's before_request does) must still work.
    """
    monkeypatch.setattr(_metadata, "_GCE_METADATA_HOST", "metadata.invalid")
    monkeypatch.setenv("HTTP_PROXY", "http://127.0.0.1:9")
    creds = TokenSource(server.netloc).credentials
    headers: dict[str, str] = {}
    await asyncio.to_thread(
        creds.before_request, Request(), "POST", "https://compute.example/x", headers
    )
    assert headers["authorization"] == f"Bearer {DEFAULT_ACCESS_TOKEN}"


async def test_vm_without_service_account_is_a_metadata_error() -> None:
    """No default service account (404) becomes a MetadataError with advice."""
    async with served(MetadataEmulator(service_account=False).app()) as server:
        with pytest.raises(MetadataError, match="service account attached"):
            await TokenSource(server.netloc).token()


def test_default_host_comes_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """TokenSource() uses the host MetadataClient.from_environ picks, read when built."""
    monkeypatch.setenv("GCE_METADATA_HOST", "127.0.0.1:8123")
    assert TokenSource().host == "127.0.0.1:8123"
    monkeypatch.delenv("GCE_METADATA_HOST")
    monkeypatch.delenv("GCE_METADATA_IP", raising=False)
    assert TokenSource().host == "169.254.169.254"
