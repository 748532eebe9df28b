"""Uploading a job's output folder to gs:// over the JSON API, against the GCS emulator."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import pytest
from notraining_agent.errors import ConfigError, JobError, MetadataError
from notraining_agent.job.fetch import download_all
from notraining_agent.job.gcs_upload import UploadPolicy, files_of, parse_gs_uri, upload_tree
from notraining_agent.util.retry import Backoff, Clock
from notraining_testkit.emulators._server import RunningServer, served
from notraining_testkit.emulators.gcs import GcsEmulator


class FakeClock(Clock):
    """Records the waits instead of waiting."""

    def __init__(self) -> None:
        self.slept: list[float] = []

    async def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)


@pytest.fixture
def emulator() -> GcsEmulator:
    return GcsEmulator(buckets=("results",))


@pytest.fixture
async def server(emulator: GcsEmulator) -> AsyncIterator[RunningServer]:
    async with served(emulator.app()) as running:
        yield running


async def upload(
    server: RunningServer,
    local_dir: Path,
    gs_uri: str,
    policy: UploadPolicy | None = None,
    token: Callable[[], Awaitable[str]] | None = None,
) -> None:
    """upload_tree towards the emulator, as the agent calls it with STORAGE_EMULATOR_HOST."""
    await upload_tree(
        local_dir, gs_uri, token=token, storage_emulator_host=server.url, policy=policy
    )


@pytest.fixture
def output(tmp_path: Path) -> Path:
    folder = tmp_path / "out"
    (folder / "sub").mkdir(parents=True)
    (folder / "manifest.json").write_text('{"arts": []}', encoding="utf-8")
    (folder / "index.npz").write_bytes(b"\x93NUMPY" + bytes(2000))
    (folder / "sub" / "drawn.png").write_bytes(b"\x89PNG")
    return folder


def _policy(clock: FakeClock, attempts: int = 3) -> UploadPolicy:
    return UploadPolicy(attempts=attempts, backoff=Backoff(jitter=False), clock=clock)


async def test_uploads_the_tree_under_the_prefix(
    emulator: GcsEmulator, server: RunningServer, output: Path
) -> None:
    """Every file lands at prefix/<relative path>, with a content type from its name."""
    await upload(server, output, "gs://results/AR/retail/POP/promo/ntd-1")
    prefix = "AR/retail/POP/promo/ntd-1"
    assert sorted(emulator.objects("results")) == [
        f"{prefix}/index.npz",
        f"{prefix}/manifest.json",
        f"{prefix}/sub/drawn.png",
    ]
    manifest = emulator.get_object("results", f"{prefix}/manifest.json")
    assert manifest is not None
    assert manifest.data == b'{"arts": []}'
    assert manifest.content_type == "application/json"
    png = emulator.get_object("results", f"{prefix}/sub/drawn.png")
    assert png is not None
    assert png.content_type == "image/png"


async def test_bucket_root_and_trailing_slash(
    emulator: GcsEmulator, server: RunningServer, output: Path
) -> None:
    """gs://bucket and gs://bucket/p/ both work (no empty path segments)."""
    await upload(server, output, "gs://results")
    await upload(server, output, "gs://results/p/")
    assert "manifest.json" in emulator.objects("results")
    assert "p/manifest.json" in emulator.objects("results")


async def test_transient_errors_are_retried_with_backoff(
    emulator: GcsEmulator, server: RunningServer, output: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Two 503s then success: the file is uploaded, waits were 1 s and 2 s, attempts logged."""
    emulator.fail(503, operation="upload", times=2)
    clock = FakeClock()
    with caplog.at_level(logging.WARNING, logger="notraining_agent.job.gcs_upload"):
        await upload(server, output, "gs://results/x", _policy(clock))
    assert clock.slept == [1.0, 2.0]
    assert len(emulator.objects("results")) == 3
    assert "attempt 1 of 3" in caplog.text
    assert "attempt 2 of 3" in caplog.text


async def test_gives_up_after_the_attempts(
    emulator: GcsEmulator, server: RunningServer, output: Path
) -> None:
    """Always 503: JobError after the policy's attempts, naming the file and the status."""
    emulator.fail(503, operation="upload", times=None)
    clock = FakeClock()
    with pytest.raises(JobError, match=r"index\.npz.*after 3 attempt\(s\).*HTTP 503.*try the job"):
        await upload(server, output, "gs://results/x", _policy(clock))
    assert len(clock.slept) == 2


async def test_permanent_errors_are_not_retried(
    emulator: GcsEmulator, server: RunningServer, output: Path
) -> None:
    """403 or a missing bucket fail at once, with advice about the bucket and the account."""
    emulator.fail(403, operation="upload", times=None)
    clock = FakeClock()
    with pytest.raises(JobError, match=r"after 1 attempt\(s\).*HTTP 403.*service account"):
        await upload(server, output, "gs://results/x", _policy(clock))
    assert clock.slept == []
    emulator.clear_faults()
    with pytest.raises(JobError, match="HTTP 404"):
        await upload(server, output, "gs://missing-bucket/x", _policy(clock))


async def test_the_token_source_is_sent(
    emulator: GcsEmulator, server: RunningServer, output: Path
) -> None:
    """The agent's token source gives the bearer token the bucket expects, on every call."""
    emulator.expected_token = "ya29.token"

    async def token() -> str:
        return "ya29.token"

    await upload(server, output, "gs://results/x", token=token)
    assert all(c.authorization == "Bearer ya29.token" for c in emulator.calls)
    assert len(emulator.objects("results")) == 3


async def test_no_token_outside_an_emulator_is_a_job_error(output: Path) -> None:
    """No token source and no emulator: JobError saying what to set up, nothing sent."""
    with pytest.raises(JobError, match=r"no service-account token.*STORAGE_EMULATOR_HOST"):
        await upload_tree(output, "gs://results/x", token=None)


async def test_a_token_that_cannot_be_had_is_a_job_error(
    emulator: GcsEmulator, server: RunningServer, output: Path
) -> None:
    """The token source failing (metadata server gone) fails the upload naming the object."""

    async def token() -> str:
        raise MetadataError("the metadata server did not answer")

    with pytest.raises(JobError, match=r"no Cloud Storage token for gs://results/x/index\.npz"):
        await upload(server, output, "gs://results/x", token=token)
    assert emulator.calls == []


async def test_checksum_mismatch_is_retried(
    emulator: GcsEmulator, server: RunningServer, output: Path
) -> None:
    """A stored object whose CRC32C is not the file's is uploaded again."""
    emulator.corrupt_checksums = 1
    clock = FakeClock()
    await upload(server, output, "gs://results/x", _policy(clock))
    assert clock.slept == [1.0]
    assert len(emulator.calls_for("upload")) == 4


async def test_upload_then_download_round_trip(
    emulator: GcsEmulator, server: RunningServer, output: Path, tmp_path: Path
) -> None:
    """What the agent uploads, its gs:// downloader reads back byte for byte, one token for both."""
    emulator.expected_token = "ya29.both"

    async def token() -> str:
        return "ya29.both"

    await upload(server, output, "gs://results/rt", token=token)
    got = await download_all(
        ["gs://results/rt/index.npz", "gs://results/rt/sub/drawn.png"],
        tmp_path / "back",
        allowed_hosts=frozenset(),
        metadata_hosts=frozenset(),
        max_total_bytes=10**6,
        token=token,
        storage_emulator_host=server.netloc,
    )
    assert [d.path.read_bytes() for d in got] == [
        (output / "index.npz").read_bytes(),
        (output / "sub" / "drawn.png").read_bytes(),
    ]
    assert {c.operation for c in emulator.calls} == {"upload", "download"}


async def test_cancellation_stops_between_retries(
    emulator: GcsEmulator, server: RunningServer, output: Path
) -> None:
    """A job cancelled while waiting to retry stops there: nothing else is uploaded."""
    emulator.fail(503, operation="upload", times=None)
    waiting = asyncio.Event()

    class BlockingClock(Clock):
        async def sleep(self, seconds: float) -> None:
            waiting.set()
            await asyncio.Event().wait()

    policy = UploadPolicy(attempts=5, clock=BlockingClock())
    task = asyncio.create_task(upload(server, output, "gs://results/x", policy))
    await asyncio.wait_for(waiting.wait(), 10)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert len(emulator.calls_for("upload")) == 1


def test_parse_gs_uri() -> None:
    """gs://bucket/prefix splits into bucket and prefix; other shapes are config errors."""
    assert parse_gs_uri("gs://b/a/b/") == ("b", "a/b")
    assert parse_gs_uri("gs://b") == ("b", "")
    for bad in ("file:///x", "gs:///x", "gs://b/x?y=1", "s3://b/x"):
        with pytest.raises(ConfigError, match="gs://bucket/prefix"):
            parse_gs_uri(bad)


def test_symlinks_are_not_uploaded(tmp_path: Path) -> None:
    """A link in the output (to a file or a folder) is skipped, not followed."""
    (tmp_path / "real.txt").write_text("x", encoding="utf-8")
    (tmp_path / "link.txt").symlink_to("/etc/hostname")
    (tmp_path / "dir").symlink_to("/etc", target_is_directory=True)
    assert [name for _, name in files_of(tmp_path)] == ["real.txt"]
