"""Run one job from its spec to its published output: the stages, in order.

``download`` (into ``job_dir/input``, emptied first so a re-run starts from
scratch) -> ``extract`` (``job_dir/input/zip``) -> ``inventory`` -> ``process``
(``job_dir/output``) -> ``publish``. Each stage is logged with
``extra={"event": "stage", "stage": ...}``. Failures are JobError subclasses whose
message is the end report's ``error``; ``asyncio.CancelledError`` (job_timeout,
SIGTERM, preemption) passes through untouched.
"""

from __future__ import annotations

import asyncio
import logging
import shutil
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from notraining_agent.config import Settings
from notraining_agent.errors import JobError, ProcessorError
from notraining_agent.job.archive import extract_zip_in_thread
from notraining_agent.job.fetch import download_all
from notraining_agent.job.inventory import build_inventory
from notraining_agent.job.output import publish
from notraining_agent.job.spec import JobSpec
from notraining_agent.processors.base import Processor, ProcessorContext
from notraining_agent.util.urls import error_text

log = logging.getLogger(__name__)

PROGRESS_LOG_SECONDS = 5.0


@dataclass(frozen=True)
class JobOutcome:
    """What the end report needs from a finished job."""

    arts: int
    output_uri: str
    warnings: tuple[str, ...] = ()
    extra: Mapping[str, object] = field(default_factory=dict)


async def run_job(
    spec: JobSpec,
    *,
    settings: Settings,
    job_dir: Path,
    processor: Processor,
    metadata_hosts: frozenset[str],
    token: Callable[[], Awaitable[str]] | None = None,
    storage_emulator_host: str | None = None,
) -> JobOutcome:
    """Download, extract, inventory, process and publish one job."""
    ids = {"ntd_transaction_id": spec.ntd_transaction_id}
    input_dir, output_dir, work_dir = job_dir / "input", job_dir / "output", job_dir / "work"
    zip_dir = input_dir / "zip"

    _stage("download", ids)
    await asyncio.to_thread(_fresh, input_dir, output_dir, work_dir)
    urls = list(spec.urls)
    downloads = await download_all(
        urls,
        input_dir / "downloads",
        allowed_hosts=settings.allowed_url_hosts,
        metadata_hosts=metadata_hosts,
        max_total_bytes=settings.max_download_bytes,
        token=token,
        storage_emulator_host=storage_emulator_host,
        on_progress=_throttled("download", ids),
        unhashed=frozenset({0}) if spec.zip_art else frozenset(),  # the zip's digest is unused
    )
    zip_download = downloads[0] if spec.zip_art else None
    art_downloads = downloads[1:] if spec.zip_art else downloads

    zip_files: list[Path] = []
    zip_digests: dict[Path, tuple[str, int]] = {}
    if zip_download is not None:
        _stage("extract", ids)
        zip_files = await extract_zip_in_thread(
            zip_download.path,
            zip_dir,
            max_total_bytes=settings.max_download_bytes,
            digests=zip_digests,
        )

    _stage("inventory", ids)
    inventory = await build_inventory(
        zip_files=zip_files,
        zip_root=zip_dir,
        zip_url=spec.zip_art,
        downloads=art_downloads,
        zip_digests=zip_digests,
    )

    _stage("process", ids, arts=len(inventory.arts), processor=settings.processor)
    context = ProcessorContext(
        job=spec,
        arts=inventory.arts,
        discrepancies=inventory.discrepancies,
        work_dir=work_dir,
        output_dir=output_dir,
        progress=_throttled("process", ids),
    )
    try:
        result = await processor(context)
    except JobError:
        raise
    except Exception as exc:  # a processor bug must end the job as failed, not the agent
        raise ProcessorError(f"processor {settings.processor} failed: {error_text(exc)}") from exc

    _stage("publish", ids)
    uri = await publish(
        output_dir,
        settings.output_uri,  # config.resolve() fills the file://<state_dir>/results default
        [spec.country, spec.channel, spec.category, spec.label, spec.ntd_transaction_id],
        token=token,
        storage_emulator_host=storage_emulator_host,
    )
    _stage("done", ids, arts=result.arts, output_uri=uri)
    return JobOutcome(
        arts=result.arts, output_uri=uri, warnings=tuple(result.warnings), extra=result.extra
    )


def _stage(stage: str, ids: Mapping[str, str], **fields: object) -> None:
    log.info("job stage: %s", stage, extra={"event": "stage", "stage": stage, **ids, **fields})


def _throttled(stage: str, ids: Mapping[str, str]) -> Callable[[int, int], None]:
    """A progress callback that logs at most every PROGRESS_LOG_SECONDS, and the last step."""
    last = [float("-inf")]

    def progress(done: int, total: int) -> None:
        now = time.monotonic()
        if done >= total or now - last[0] >= PROGRESS_LOG_SECONDS:
            last[0] = now
            log.info(
                "%s: %d of %d",
                stage,
                done,
                total,
                extra={"event": "progress", "stage": stage, "done": done, "total": total, **ids},
            )

    return progress


def _fresh(*folders: Path) -> None:
    """Empty the job's working folders: a re-run (attempt 2 or 3) starts from scratch."""
    for folder in folders:
        try:
            shutil.rmtree(folder)
        except FileNotFoundError:
            pass
        except OSError as exc:
            raise JobError(
                f"cannot clean {folder} ({exc.strerror}); check state_dir permissions"
            ) from exc
        folder.mkdir(parents=True)


@dataclass(frozen=True)
class JobRun:
    """:func:`run_job` with what every job of this process shares bound: the lifecycle's runner."""

    settings: Settings
    processor: Processor
    metadata_hosts: frozenset[str]
    token: Callable[[], Awaitable[str]] | None = None
    storage_emulator_host: str | None = None

    async def __call__(self, spec: JobSpec, job_dir: Path) -> JobOutcome:
        """Run ``spec`` in ``job_dir``."""
        return await run_job(
            spec,
            settings=self.settings,
            job_dir=job_dir,
            processor=self.processor,
            metadata_hosts=self.metadata_hosts,
            token=self.token,
            storage_emulator_host=self.storage_emulator_host,
        )
