"""Uploading a job's output folder to gs:// (against the Cloud Storage emulator)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from google.oauth2.credentials import Credentials
from notraining_agent.errors import ConfigError, JobError
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
async def server(
    emulator: GcsEmulator, monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[RunningServer]:
    async with served(emulator.app()) as running:
        monkeypatch.setenv("STORAGE_EMULATOR_HOST", running.url)
        yield running


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
    await upload_tree(output, "gs://results/AR/retail/POP/promo/ntd-1")
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
    await upload_tree(output, "gs://results")
    await upload_tree(output, "gs://results/p/")
    assert "manifest.json" in emulator.objects("results")
    assert "p/manifest.json" in emulator.objects("results")


async def test_transient_errors_are_retried_with_backoff(
    emulator: GcsEmulator, server: RunningServer, output: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Two 503s then success: the file is uploaded, waits were 1 s and 2 s, attempts logged."""
    emulator.fail(503, operation="upload", times=2)
    clock = FakeClock()
    with caplog.at_level(logging.WARNING, logger="notraining_agent.job.gcs_upload"):
        await upload_tree(output, "gs://results/x", policy=_policy(clock))
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
        await upload_tree(output, "gs://results/x", policy=_policy(clock))
    assert len(clock.slept) == 2


async def test_permanent_errors_are_not_retried(
    emulator: GcsEmulator, server: RunningServer, output: Path
) -> None:
    """403 or a missing bucket fail at once, with advice about the bucket and the account."""
    emulator.fail(403, operation="upload", times=None)
    clock = FakeClock()
    with pytest.raises(JobError, match=r"after 1 attempt\(s\).*HTTP 403.*service account"):
        await upload_tree(output, "gs://results/x", policy=_policy(clock))
    assert clock.slept == []
    emulator.clear_faults()
    with pytest.raises(JobError, match="HTTP 404"):
        await upload_tree(output, "gs://missing-bucket/x", policy=_policy(clock))


async def test_credentials_from_google_auth_are_sent(
    emulator: GcsEmulator, server: RunningServer, output: Path
) -> None:
    """Explicit google-auth credentials go out as the bearer token the bucket expects."""
    emulator.expected_token = "ya29.token"
    creds = Credentials(token="ya29.token")  # type: ignore[no-untyped-call]
    await upload_tree(output, "gs://results/x", credentials=creds, project="p")
    assert all(c.authorization == "Bearer ya29.token" for c in emulator.calls)
    assert len(emulator.objects("results")) == 3


async def test_no_credentials_outside_the_emulator_is_a_job_error(
    output: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """No emulator and google-auth finds no credentials: JobError saying what to set up."""
    import google.auth  # noqa: PLC0415 - patched for this test only
    from google.auth.exceptions import DefaultCredentialsError  # noqa: PLC0415

    asked: list[object] = []

    def no_credentials(scopes: object = None) -> object:
        asked.append(scopes)
        raise DefaultCredentialsError("Your default credentials were not found.")  # type: ignore[no-untyped-call]

    monkeypatch.setattr(google.auth, "default", no_credentials)
    with pytest.raises(JobError, match=r"no Google credentials.*service account"):
        await upload_tree(output, "gs://results/x", environ={})
    assert asked == [["https://www.googleapis.com/auth/devstorage.read_write"]]


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
    task = asyncio.create_task(upload_tree(output, "gs://results/x", policy=policy))
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
