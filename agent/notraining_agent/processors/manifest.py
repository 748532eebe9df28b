"""The built-in ``manifest`` processor: one ``manifest.json`` describing every art.

Image format and size come from the header only, never by decoding: JPEG, PNG,
GIF, WebP and BMP through :mod:`~notraining_agent.processors.imagesize`, anything
else through Pillow's header parsing (``Image.open`` without ``load()``, imported
only then). Arts are read in a thread, :data:`BATCH` at a time, so a cancel stops
between batches. A file that cannot be read is listed with ``format: null`` and a
warning; it does not fail the job.
"""

from __future__ import annotations

import asyncio
import json
import warnings
from datetime import UTC, datetime
from pathlib import Path

from notraining_agent.processors.base import Art, ProcessorContext, ProcessorResult
from notraining_agent.processors.imagesize import Header, UnknownFormatError, read_known
from notraining_agent.util.fsio import atomic_write
from notraining_agent.util.urls import shown_url

MANIFEST_NAME = "manifest.json"
MAX_WARNINGS = 20
BATCH = 64  # arts per thread hop: header reads take microseconds, the hop does not


async def process(ctx: ProcessorContext) -> ProcessorResult:
    """Write ``ctx.output_dir/manifest.json`` and count the arts."""
    total = len(ctx.arts)
    ctx.progress(0, total)
    entries: list[dict[str, object]] = []
    problems: list[str] = []
    for start in range(0, total, BATCH):
        batch = ctx.arts[start : start + BATCH]
        headers = await asyncio.to_thread(_read_headers, batch)
        for done, art, (image_format, width, height, problem) in zip(
            range(start + 1, total + 1), batch, headers, strict=False
        ):
            entries.append(_entry(art, image_format, width, height))
            if problem:
                problems.append(f"{art.name}: {problem}; listed with format null")
            ctx.progress(done, total)
    warnings_out = _bounded(problems)
    if ctx.discrepancies:
        warnings_out.append(
            f"{len(ctx.discrepancies)} name(s) differ between zip_art and arts_path; "
            f"see {MANIFEST_NAME}"
        )
    document = {
        **_job_fields(ctx),
        "generated_at": datetime.now(UTC).isoformat(timespec="seconds").replace("+00:00", "Z"),
        "arts_count": total,
        "arts": entries,
        "discrepancies": [
            {"name": d.name, "kind": d.kind, "detail": d.detail} for d in ctx.discrepancies
        ],
        "warnings": warnings_out,
    }
    await asyncio.to_thread(_write_json, ctx.output_dir / MANIFEST_NAME, document)
    return ProcessorResult(
        arts=total,
        warnings=tuple(warnings_out),
        extra={"manifest": MANIFEST_NAME, "discrepancies": len(ctx.discrepancies)},
    )


def _read_headers(arts: tuple[Art, ...]) -> list[Header]:
    return [read_header(art.path) for art in arts]


def read_header(path: Path) -> Header:
    """(format, width, height, problem) from the image header, never decoding pixels."""
    try:
        with path.open("rb") as handle:
            return read_known(handle)
    except UnknownFormatError:
        return _read_with_pillow(path)
    except OSError as exc:
        return None, None, None, f"unreadable file ({exc.strerror})"


def _read_with_pillow(path: Path) -> Header:
    """Pillow's header parsing, for formats :mod:`.imagesize` does not know."""
    from PIL import Image, UnidentifiedImageError  # noqa: PLC0415 - only for unusual formats

    try:
        # catch_warnings is process-wide; a bomb *warning* is harmless here (nothing is
        # decoded) and must not surface as an error under ``-W error``.
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(path) as image:
                return image.format, image.width, image.height, None
    except Image.DecompressionBombError:
        return None, None, None, "its header claims too many pixels"
    except UnidentifiedImageError:
        return None, None, None, "not an image Pillow can read"
    except Exception as exc:  # Pillow's plugins raise many types for malformed headers
        return None, None, None, f"unreadable image header ({type(exc).__name__})"


def _entry(
    art: Art, image_format: str | None, width: int | None, height: int | None
) -> dict[str, object]:
    return {
        "name": art.name,
        "source_url": art.sources[0] if art.sources else None,
        "sources": list(art.sources),
        "sha256": art.sha256,
        "bytes": art.size,
        "format": image_format,
        "width": width,
        "height": height,
    }


def _job_fields(ctx: ProcessorContext) -> dict[str, object]:
    """The job's fields, its URLs shown without query strings (signed URLs carry secrets)."""
    job = ctx.job
    return {
        **job.as_fields(),
        "zip_art": shown_url(job.zip_art) if job.zip_art else None,
        "arts_path": [shown_url(url) for url in job.arts_path],
    }


def _bounded(problems: list[str]) -> list[str]:
    """At most MAX_WARNINGS lines, so the end report stays small."""
    if len(problems) <= MAX_WARNINGS:
        return list(problems)
    return [*problems[:MAX_WARNINGS], f"and {len(problems) - MAX_WARNINGS} more"]


def _write_json(path: Path, document: dict[str, object]) -> None:
    """Written atomically: a reader never sees half a manifest.

    Not fsynced: this copy lives in the job's work folder, which a re-run after a crash
    empties, and what outlives the job is the published copy (issue 12: the fsyncs were
    one of three durable writes between the POST and the end report).
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write(path, json.dumps(document, ensure_ascii=False, indent=2) + "\n", durable=False)
