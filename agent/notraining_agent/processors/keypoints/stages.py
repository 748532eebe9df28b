"""What a worker process does, one stage at a time; it speaks JSON lines on stdout.

Stages (the parent runs them in this order, the first and last over several workers):

* ``extract``: decode, normalise, describe and hash each art of the worker's shard,
  saving ``features/NNNNNN.npz`` in the work folder; an unreadable art is reported as
  failed, not raised, so one bad file never fails the job.
* ``index``: gather every art that was extracted into ``index.npz`` and find
  near-duplicates by hash distance.
* ``check``: the matchability check of the shard's arts against the whole index, from
  the small copy of each art saved at extraction.
* ``sheet``: ``contact-sheet.png`` from the thumbnails saved at extraction and the
  manifest's verdicts.
"""

from __future__ import annotations

import json
import sys
import zlib
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from notraining_agent.processors.keypoints import index as index_mod
from notraining_agent.processors.keypoints import phash, sheet, views
from notraining_agent.processors.keypoints.features import (
    Features,
    Gray,
    ImageDecodeError,
    decode_gray,
    extract,
    normalise,
)
from notraining_agent.processors.keypoints.manifest import MANIFEST_FILE
from notraining_agent.processors.keypoints.matcher import Matcher
from notraining_agent.processors.keypoints.options import KeypointsOptions

Emit = Callable[[dict[str, Any]], None]
FEATURES_DIR = "features"
DETECT_FRACTION = 0.625
"""Arts are searched for keypoints at this fraction of their enrolled size (see describe).
At 0.5 a generated poster lost its finest print and missed three of its seven check
views; 0.625 keeps every view and 40 % of the pixels."""


def emit_stdout(event: dict[str, Any]) -> None:
    """One event as one JSON line, flushed so the parent sees progress as it happens."""
    sys.stdout.write(json.dumps(event, separators=(",", ":")) + "\n")
    sys.stdout.flush()


def load_plan(path: Path) -> dict[str, Any]:
    """The plan the parent wrote: options, folders and the arts to work on."""
    plan: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    return plan


def _features_path(plan: dict[str, Any], art: int) -> Path:
    return Path(plan["work_dir"]) / FEATURES_DIR / f"{art:06d}.npz"


def _shard(plan: dict[str, Any], shard: int, shards: int) -> list[int]:
    return [k for k in range(len(plan["arts"])) if k % shards == shard]


def load_art(path: Path, options: KeypointsOptions) -> tuple[Gray, tuple[int, int]]:
    """An art as the index sees it (grey, long side capped) and its original size."""
    gray = decode_gray(path.read_bytes())
    original = (int(gray.shape[1]), int(gray.shape[0]))
    normalised, _ = normalise(gray, options.max_side)
    return normalised, original


def describe(name: str, gray: Gray, options: KeypointsOptions) -> index_mod.EnrolledArt:
    """A normalised art as the index stores it: its features, spread over sizes, and hash.

    SIFT looks for keypoints on a smaller copy (DETECT_FRACTION): it doubles its input
    first, so that copy's finest scale is still about the art's own pixels, and finer
    keypoints (a pixel or two of a 1,024-pixel art) are gone in any store photo. At half
    size enrollment of the real-photo set went from 13.4 to 5.0 CPU s, recall unchanged."""
    small, factor = normalise(gray, max(1, round(options.max_side * DETECT_FRACTION)))
    found = extract(small, options.features, options.art_features, spread_scales=True)
    if factor < 1.0:
        found = Features((found.points / factor).astype(np.float32), found.descriptors)
    width, height = int(gray.shape[1]), int(gray.shape[0])
    return index_mod.EnrolledArt(name, width, height, found, phash.phash(gray))


def run_extract(plan: dict[str, Any], shard: int, shards: int, emit: Emit) -> None:
    """Describe the shard's arts; each art ends in one ``extracted`` event, ok or not."""
    options = KeypointsOptions.from_json(plan["options"])
    (Path(plan["work_dir"]) / FEATURES_DIR).mkdir(parents=True, exist_ok=True)
    for k in _shard(plan, shard, shards):
        art = plan["arts"][k]
        try:
            gray, (width, height) = load_art(Path(art["path"]), options)
        except ImageDecodeError as exc:
            emit({"event": "extracted", "art": k, "ok": False, "error": str(exc)})
            continue
        except OSError as exc:
            emit({"event": "extracted", "art": k, "ok": False, "error": f"unreadable: {exc}"})
            continue
        enrolled = describe(art["name"], gray, options)
        thumb, _ = sheet.thumbnail(gray)
        np.savez(
            _features_path(plan, k),
            thumb=thumb,
            view_art=views.view_art(gray),
            points=enrolled.features.points,
            descriptors=enrolled.features.descriptors,
            size=np.array([enrolled.width, enrolled.height], np.int32),
            phash=np.array(enrolled.phash, dtype=np.uint64),
        )
        emit(
            {
                "event": "extracted",
                "art": k,
                "ok": True,
                "features": len(enrolled.features),
                "phash": phash.to_hex(enrolled.phash),
                "width": width,
                "height": height,
                "enrolled_width": enrolled.width,
                "enrolled_height": enrolled.height,
            }
        )


def run_index(plan: dict[str, Any], emit: Emit) -> None:
    """Build ``index.npz`` from every extracted art, in plan order."""
    options = KeypointsOptions.from_json(plan["options"])
    enrolled: list[index_mod.EnrolledArt] = []
    plan_ids: list[int] = []
    for k, art in enumerate(plan["arts"]):
        path = _features_path(plan, k)
        if not path.exists():
            continue
        with np.load(path, allow_pickle=False) as data:
            features = Features(data["points"], data["descriptors"])
            width, height = (int(v) for v in data["size"])
            digest = int(data["phash"])
        enrolled.append(index_mod.EnrolledArt(art["name"], width, height, features, digest))
        plan_ids.append(k)
    built = index_mod.build(options.features, enrolled)
    built.save(Path(plan["output_dir"]))
    pairs = phash.near_duplicates([a.phash for a in enrolled])
    emit(
        {
            "event": "indexed",
            "arts": len(enrolled),
            "descriptors": len(built.descriptors),
            "near_duplicates": [[plan_ids[i], plan_ids[j], d] for i, j, d in pairs],
        }
    )


def run_check(plan: dict[str, Any], shard: int, shards: int, emit: Emit) -> None:
    """The matchability check of the shard's enrolled arts against the whole index."""
    options = KeypointsOptions.from_json(plan["options"])
    built = index_mod.load(Path(plan["output_dir"]))
    position = {name: i for i, name in enumerate(built.names)}
    matcher = Matcher(built)
    for k in _shard(plan, shard, shards):
        art = plan["arts"][k]
        if art["name"] not in position:
            continue  # failed at extraction, already reported
        with np.load(_features_path(plan, k), allow_pickle=False) as data:
            gray = data["view_art"]
        result = views.check_art(
            matcher,
            position[art["name"]],
            gray,
            seed=zlib.crc32(art["name"].encode("utf-8")),
            conditions=options.conditions,
        )
        emit(
            {
                "event": "checked",
                "art": k,
                "views": result.views,
                "found": result.found,
                "missed": list(result.missed),
                "confusions": result.confusions,
            }
        )


def run_sheet(plan: dict[str, Any], emit: Emit) -> None:
    """Draw ``contact-sheet.png`` next to the manifest, every art in plan order."""
    output = Path(plan["output_dir"])
    manifest = json.loads((output / MANIFEST_FILE).read_text(encoding="utf-8"))
    entries = {str(entry["name"]): entry for entry in manifest["arts"]}
    tiles = []
    for k, art in enumerate(plan["arts"]):
        path = _features_path(plan, k)
        thumb = None
        points = np.zeros((0, 2), np.float32)
        if path.exists():
            with np.load(path, allow_pickle=False) as data:
                thumb = data["thumb"]
                scale = thumb.shape[1] / max(1, int(data["size"][0]))
                points = (data["points"] * scale).astype(np.float32)
        tiles.append(sheet.Tile(art["name"], thumb, points, entries.get(art["name"], {})))
    written = sheet.write(output, tiles)
    emit({"event": "sheet", "path": written.name, "arts": len(tiles)})


def index_from_images(images: Mapping[str, bytes], options: KeypointsOptions) -> index_mod.Index:
    """Enroll images in this process, without the check: for tests, benchmarks and demos."""
    enrolled = [
        describe(name, normalise(decode_gray(data), options.max_side)[0], options)
        for name, data in images.items()
    ]
    return index_mod.build(options.features, enrolled)


def run(stage: str, plan_path: Path, shard: int, shards: int, emit: Emit = emit_stdout) -> None:
    """Run one stage in this process: the worker's whole job."""
    # Parallelism comes from several worker processes; threads inside each would only
    # fight over the same cores.
    cv2.setNumThreads(1)
    plan = load_plan(plan_path)
    if stage == "extract":
        run_extract(plan, shard, shards, emit)
    elif stage == "index":
        run_index(plan, emit)
    elif stage == "check":
        run_check(plan, shard, shards, emit)
    elif stage == "sheet":
        run_sheet(plan, emit)
    else:
        raise ValueError(f"unknown stage {stage!r}")
