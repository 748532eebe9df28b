"""run_job end to end against the loopback art server: stages, outcome, output, failures."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import logging
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from notraining_agent.config import Settings
from notraining_agent.errors import InputRefusedError, ProcessorError
from notraining_agent.job.runner import run_job
from notraining_agent.job.spec import JobSpec, parse_job
from notraining_agent.processors.base import ProcessorContext, ProcessorResult
from notraining_agent.processors.manifest import process as manifest
from notraining_testkit.emulators._server import RunningServer, served
from notraining_testkit.emulators.artgen import ArtPackage, generate_art, generate_package
from notraining_testkit.emulators.artserver import ArtServer

PACKAGE: ArtPackage = generate_package(3, seed=21)
META = frozenset({"169.254.169.254", "metadata.google.internal", "metadata"})


@pytest.fixture
def arts() -> ArtServer:
    return ArtServer(PACKAGE)


@pytest.fixture
async def server(arts: ArtServer) -> AsyncIterator[RunningServer]:
    async with served(arts.app()) as running:
        yield running


def settings_for(server: RunningServer, tmp_path: Path) -> Settings:
    return Settings(
        state_dir=tmp_path,
        output_uri=f"file://{tmp_path}/results",
        allowed_url_hosts=frozenset({server.netloc}),
    )


def spec_for(
    arts: ArtServer, server: RunningServer, *, with_paths: bool = True, zip_art: str | None = None
) -> JobSpec:
    fields = arts.job_payload("42", base_url=server.url, with_paths=with_paths)
    if zip_art is not None:
        fields["zip_art"] = zip_art
    return parse_job(fields, allowed_hosts=frozenset({server.netloc}), metadata_hosts=META)


async def test_end_to_end(
    arts: ArtServer, server: RunningServer, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Zip plus arts_path: every stage runs, the manifest is published, arts are counted."""
    extra = generate_art(99)
    arts.add_file("/extra/only_web.png", extra)
    spec = spec_for(arts, server)
    spec = dataclasses.replace(
        spec, arts_path=(*spec.arts_path, f"{server.url}/extra/only_web.png")
    )
    with caplog.at_level(logging.INFO):
        outcome = await run_job(
            spec,
            settings=settings_for(server, tmp_path),
            job_dir=tmp_path / "jobs" / "42",
            processor=manifest,
            metadata_hosts=META,
        )
    stages = [r.stage for r in caplog.records if getattr(r, "event", None) == "stage"]  # type: ignore[attr-defined]
    assert stages == ["download", "extract", "inventory", "process", "publish", "done"]
    assert outcome.arts == 4
    target = tmp_path / "results" / "MX" / "instagram" / "POP" / "summer" / "42"
    assert outcome.output_uri == f"file://{target}"
    manifest_json = json.loads((target / "manifest.json").read_text(encoding="utf-8"))
    assert sorted(a["name"] for a in manifest_json["arts"]) == [*PACKAGE.names, "only_web.png"]
    assert {(d["name"], d["kind"]) for d in manifest_json["discrepancies"]} == {
        ("only_web.png", "only_in_arts_path")
    }
    assert all(a["format"] == "PNG" for a in manifest_json["arts"])
    assert outcome.warnings  # the discrepancy is summarised for the end report


async def test_rerun_starts_from_scratch(
    arts: ArtServer, server: RunningServer, tmp_path: Path
) -> None:
    """A second attempt empties input and output first and publishes over the first."""
    job_dir = tmp_path / "jobs" / "42"
    (job_dir / "input").mkdir(parents=True)
    (job_dir / "input" / "stale.bin").write_bytes(b"old attempt")
    settings = settings_for(server, tmp_path)
    spec = spec_for(arts, server, with_paths=False)
    first = await run_job(
        spec, settings=settings, job_dir=job_dir, processor=manifest, metadata_hosts=META
    )
    second = await run_job(
        spec, settings=settings, job_dir=job_dir, processor=manifest, metadata_hosts=META
    )
    assert first == second
    assert not (job_dir / "input" / "stale.bin").exists()
    assert len(arts.requests_for("/package.zip")) == 2


async def test_refused_zip_fails_without_output(
    arts: ArtServer, server: RunningServer, tmp_path: Path
) -> None:
    """A zip_art that is an HTML page fails the job; nothing is published."""
    arts.add_file("/login.zip", b"<!doctype html><title>Sign in</title>", content_type="text/html")
    spec = spec_for(arts, server, zip_art=f"{server.url}/login.zip")
    with pytest.raises(InputRefusedError, match="HTML"):
        await run_job(
            spec,
            settings=settings_for(server, tmp_path),
            job_dir=tmp_path / "jobs" / "42",
            processor=manifest,
            metadata_hosts=META,
        )
    assert not (tmp_path / "results").exists()


async def test_processor_bug_becomes_processor_error(
    arts: ArtServer, server: RunningServer, tmp_path: Path
) -> None:
    """An unexpected exception in a processor ends the job as ProcessorError."""

    async def broken(ctx: ProcessorContext) -> ProcessorResult:
        raise KeyError("boom")

    with pytest.raises(ProcessorError, match="KeyError"):
        await run_job(
            spec_for(arts, server),
            settings=settings_for(server, tmp_path),
            job_dir=tmp_path / "jobs" / "42",
            processor=broken,
            metadata_hosts=META,
        )


async def test_cancel_propagates(arts: ArtServer, server: RunningServer, tmp_path: Path) -> None:
    """Cancelling run_job (job_timeout, SIGTERM) raises CancelledError, not a JobError."""
    arts.throttle(2_000)
    task = asyncio.create_task(
        run_job(
            spec_for(arts, server),
            settings=settings_for(server, tmp_path),
            job_dir=tmp_path / "jobs" / "42",
            processor=manifest,
            metadata_hosts=META,
        )
    )
    await asyncio.sleep(0.2)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task


async def test_zip_announced_small_is_refused_as_truncated(
    arts: ArtServer, server: RunningServer, tmp_path: Path
) -> None:
    """A big zip sent with a small Content-Length arrives cut short and is refused."""
    spec = spec_for(arts, server, zip_art=f"{server.url}/lie/package.zip?length=100")
    with pytest.raises(InputRefusedError, match="truncated"):
        await run_job(
            spec,
            settings=settings_for(server, tmp_path),
            job_dir=tmp_path / "jobs" / "42",
            processor=manifest,
            metadata_hosts=META,
        )
    assert not (tmp_path / "results").exists()
