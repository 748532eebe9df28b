"""secret_ref reads: Secret Manager emulator, token from the metadata emulator's token path."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass

import aiohttp
import pytest
from notraining_agent.errors import ConfigError
from notraining_agent.gce.credentials import TokenSource
from notraining_agent.gce.metadata import MetadataClient
from notraining_agent.gce.secrets import access_secret_version
from notraining_agent.util.retry import Clock
from notraining_testkit.emulators._server import served
from notraining_testkit.emulators.metadata import DEFAULT_ACCESS_TOKEN, MetadataEmulator
from notraining_testkit.emulators.secretmanager import SecretManagerEmulator

REF = "projects/demo-project/secrets/notraining-jwt/versions/1"
VALUE = "a-long-enough-secret-for-hs256-signing-0123456789"


@dataclass
class World:
    secrets: SecretManagerEmulator
    endpoint: str
    tokens: TokenSource
    session: aiohttp.ClientSession
    delays: list[float]

    async def read(self, ref: str = REF) -> str:
        """access_secret_version with this world's endpoint, tokens and recorded sleeps."""
        return await access_secret_version(
            ref,
            endpoint=self.endpoint,
            tokens=self.tokens,
            session=self.session,
            timeout=2.0,
            clock=_Recording(self.delays),
        )


class _Recording(Clock):
    """A clock whose sleeps are recorded, not waited."""

    def __init__(self, delays: list[float]) -> None:
        self.delays = delays

    async def sleep(self, seconds: float) -> None:
        self.delays.append(seconds)


@pytest.fixture
async def world(session: aiohttp.ClientSession) -> AsyncIterator[World]:
    secrets = SecretManagerEmulator(expected_token=DEFAULT_ACCESS_TOKEN)
    secrets.add_secret(REF, VALUE)
    async with (
        served(MetadataEmulator().app()) as metadata,
        MetadataClient(metadata.netloc) as client,
        served(secrets.app()) as api,
    ):
        yield World(secrets, api.url, TokenSource(client), session, [])


async def test_reads_the_secret_with_the_metadata_token(
    world: World, caplog: pytest.LogCaptureFixture
) -> None:
    """The payload comes back as text; the call carried the VM's token; nothing logs it."""
    with caplog.at_level(logging.DEBUG):
        assert await world.read() == VALUE
    [call] = world.secrets.calls
    assert call.path == f"/v1/{REF}:access"
    assert call.headers["Authorization"] == f"Bearer {DEFAULT_ACCESS_TOKEN}"
    assert VALUE not in caplog.text
    assert DEFAULT_ACCESS_TOKEN not in caplog.text


@pytest.mark.parametrize(
    "ref",
    [
        "",
        "notraining-jwt",
        "projects/demo-project/secrets/notraining-jwt",
        "projects/demo-project/secrets/notraining-jwt/versions/1/extra",
        "projects/../secrets/s/versions/1",
        "projects/p/secrets/s/versions/1?x=y",
    ],
)
async def test_malformed_ref_is_a_config_error(world: World, ref: str) -> None:
    """A ref that is not projects/P/secrets/S/versions/V names secret_ref and sends nothing."""
    with pytest.raises(ConfigError, match="secret_ref"):
        await world.read(ref)
    assert world.secrets.calls == []


async def test_denied_secret_tells_which_role_to_grant(world: World) -> None:
    """403 becomes a ConfigError naming roles/secretmanager.secretAccessor."""
    world.secrets.deny("notraining-jwt")
    with pytest.raises(ConfigError, match=r"roles/secretmanager\.secretAccessor"):
        await world.read()


async def test_unknown_secret_tells_to_check_the_name(world: World) -> None:
    """404 becomes a ConfigError telling the operator to check the name."""
    with pytest.raises(ConfigError, match="check the name"):
        await world.read("projects/demo-project/secrets/nope/versions/latest")


async def test_transient_failures_are_retried(world: World) -> None:
    """Two 503s are retried with doubling delays, then the value is returned."""
    world.secrets.fail_next(2, 503)
    assert await world.read() == VALUE
    assert world.delays == [0.5, 1.0]


async def test_persistent_failures_end_in_a_config_error(world: World) -> None:
    """After three failed attempts the error names secret_ref and the endpoint."""
    world.secrets.fail_next(3, 500)
    with pytest.raises(ConfigError, match=r"secret_ref .* failed 3 times"):
        await world.read()
    assert len(world.secrets.calls) == 3


async def test_checksum_mismatch_is_refused(world: World) -> None:
    """A payload whose CRC32C does not match is retried, then refused."""
    world.secrets.corrupt_checksums = True
    with pytest.raises(ConfigError, match="CRC32C"):
        await world.read()


async def test_trailing_newline_is_dropped_and_binary_refused(world: World) -> None:
    """`echo`'s newline is not part of the secret; a non-UTF-8 payload is refused."""
    world.secrets.add_secret("notraining-jwt", VALUE + "\n")
    assert await world.read(REF.replace("/1", "/2")) == VALUE
    world.secrets.add_secret("notraining-jwt", b"\xff\xfe")
    with pytest.raises(ConfigError, match="not UTF-8"):
        await world.read(REF.replace("/1", "/latest"))
