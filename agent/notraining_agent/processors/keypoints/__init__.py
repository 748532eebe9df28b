"""The ``keypoints`` processor: enroll POP arts so store photos can be matched without training.

Per art: decode, normalise (long side capped), local features (SIFT, or ORB with
``NOTRAINING_KEYPOINTS_FEATURES=orb``) and a 64-bit perceptual hash. The package's
features go to ``index.npz``; ``manifest.json`` gives per art its feature count, hash,
near-duplicates and the matchability check (recall over synthetic store photos, and
confusions), and the warnings go to the end report. ``contact-sheet.png`` shows
every art with its keypoints, recall and warning, for a reviewer to spot hard ones.
``notraining-agent match`` uses the index to find the arts in photos.

The work runs in child processes (see ``worker``), so this module, imported by the
agent, needs neither cv2 nor numpy; it only checks that the children will find them.
"""

from __future__ import annotations

import asyncio
import importlib.util
import json
import logging
import os
from pathlib import Path

from notraining_agent.errors import ConfigError, ProcessorError
from notraining_agent.processors.base import ProcessorContext, ProcessorResult
from notraining_agent.processors.keypoints.manifest import ManifestBuilder, write_manifest
from notraining_agent.processors.keypoints.options import KeypointsOptions, options_from_env
from notraining_agent.processors.keypoints.worker import run_stage, worker_count

log = logging.getLogger(__name__)

INSTALL_HINT = "pip install 'notraining-agent[vision]'"
_missing = [m for m in ("cv2", "numpy") if importlib.util.find_spec(m) is None]
if _missing:
    raise ConfigError(
        f"config: processor='keypoints' needs {' and '.join(_missing)}, which are not "
        f"installed; run {INSTALL_HINT}"
    )

__all__ = ["KeypointsOptions", "enroll", "process"]


async def process(ctx: ProcessorContext) -> ProcessorResult:
    """The processor entry point: options from the environment, then :func:`enroll`."""
    return await enroll(ctx, options_from_env(os.environ))


async def enroll(ctx: ProcessorContext, options: KeypointsOptions) -> ProcessorResult:
    """Extract, index and check the job's arts; write ``index.npz`` and ``manifest.json``."""
    if not ctx.arts:
        raise ProcessorError("the job has no arts to enroll; send a zip_art or arts_path")
    work = ctx.work_dir / "keypoints"
    work.mkdir(parents=True, exist_ok=True)
    ctx.output_dir.mkdir(parents=True, exist_ok=True)
    plan = _write_plan(ctx, work, options)
    builder = ManifestBuilder(ctx.arts, options, ctx.progress)
    shards = worker_count(options.workers, len(ctx.arts))
    log.info(
        "keypoints: enrolling %d arts with %s on %d workers",
        len(ctx.arts),
        options.features,
        shards,
        extra={"ntd_transaction_id": ctx.job.ntd_transaction_id},
    )
    await run_stage("extract", plan, shards, builder.on_event)
    if builder.enrolled == 0:
        reasons = "; ".join(builder.errors[:3])
        raise ProcessorError(f"none of the {len(ctx.arts)} arts could be enrolled ({reasons})")
    await run_stage("index", plan, 1, builder.on_event)
    if options.conditions:
        log.info("keypoints: matchability check of %d arts", builder.enrolled)
        await run_stage(
            "check", plan, worker_count(options.workers, builder.enrolled), builder.on_event
        )
    manifest = builder.build(ctx.discrepancies)
    # A 1000-art manifest is about a megabyte of JSON and an fsync: not on the event loop.
    await asyncio.to_thread(write_manifest, ctx.output_dir, manifest)
    await run_stage("sheet", plan, 1, builder.on_event)
    warnings = tuple(str(w) for w in manifest["warnings"])
    for warning in warnings:
        log.warning("keypoints: %s", warning)
    return ProcessorResult(
        arts=len(ctx.arts),
        warnings=warnings,
        extra={
            "features": options.features,
            "arts_enrolled": builder.enrolled,
            "arts_failed": len(ctx.arts) - builder.enrolled,
            "descriptors": builder.descriptors,
        },
    )


def _write_plan(ctx: ProcessorContext, work: Path, options: KeypointsOptions) -> Path:
    """The children's instructions: options, folders, and the arts in job order."""
    plan = {
        "options": options.to_json(),
        "work_dir": str(work),
        "output_dir": str(ctx.output_dir),
        "arts": [{"name": art.name, "path": str(art.path)} for art in ctx.arts],
    }
    path = work / "plan.json"
    path.write_text(json.dumps(plan), encoding="utf-8")
    return path
