"""``notraining-agent match --index DIR PHOTO... [--draw OUT.png]``: find enrolled arts.

Prints one JSON document on stdout: per photo, each detected art with its inlier
count, a confidence (0.5 at the acceptance threshold, 0.95 at twice it) and its four
corners in the photo's pixels, clockwise from the art's top left. Exit 0 when every
photo was read, 1 when one could not be, 2 when the index cannot be used.

cv2 and numpy are imported only when the command runs, so the agent's other
commands work without the ``vision`` extra.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

from notraining_agent.errors import EXIT_CONFIG, ConfigError

if TYPE_CHECKING:
    from notraining_agent.processors.keypoints.matcher import Matcher
    from notraining_agent.processors.keypoints.synth import Image
    from notraining_agent.processors.keypoints.verify import Detection

EXIT_PHOTO_FAILED = 1


def add_parser(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Register the ``match`` subcommand."""
    parser = subparsers.add_parser(
        "match",
        help="find the enrolled arts in store photos (keypoints index)",
        description="Match photos against an index made by the keypoints processor "
        "(the folder holding index.npz) and print the detections as JSON.",
    )
    parser.add_argument(
        "--index", required=True, type=Path, metavar="DIR", help="folder with index.npz"
    )
    parser.add_argument("photos", nargs="+", type=Path, metavar="PHOTO", help="photos to match")
    parser.add_argument(
        "--draw",
        type=Path,
        metavar="OUT.png",
        help="write the photo with each detection outlined and named; with several "
        "photos, OUT-1.png, OUT-2.png...",
    )


def run(args: argparse.Namespace) -> int:
    """Match every photo and print the JSON report; returns the exit code."""
    try:
        matcher, load_ms = _load(Path(args.index))
    except ConfigError as exc:
        sys.stderr.write(f"{exc}\n")
        return EXIT_CONFIG
    photos: list[Path] = list(args.photos)
    results = []
    for number, photo in enumerate(photos, start=1):
        draw_to = _draw_path(args.draw, number, len(photos))
        results.append(_match_one(matcher, photo, draw_to))
    report = {
        "index": str(args.index),
        "features": matcher.index.kind,
        "arts": len(matcher.index),
        "load_ms": load_ms,
        "photos": results,
    }
    json.dump(report, sys.stdout, indent=2)
    sys.stdout.write("\n")
    return EXIT_PHOTO_FAILED if any("error" in r for r in results) else 0


def _load(directory: Path) -> tuple[Matcher, float]:
    """The index as a ready matcher; ConfigError when vision or the index is missing."""
    start = time.perf_counter()
    try:
        from notraining_agent.processors.keypoints import index  # noqa: PLC0415 - optional extra
        from notraining_agent.processors.keypoints.matcher import Matcher  # noqa: PLC0415
    except ImportError as exc:
        raise ConfigError(
            f"match needs the vision extra ({exc}); run pip install 'notraining-agent[vision]'"
        ) from exc
    try:
        loaded = index.load(directory)
    except index.IndexFileError as exc:
        raise ConfigError(f"match: {exc}") from exc
    return Matcher(loaded), round((time.perf_counter() - start) * 1000, 1)


def _draw_path(draw: Path | None, number: int, total: int) -> Path | None:
    if draw is None or total == 1:
        return draw
    return draw.with_name(f"{draw.stem}-{number}{draw.suffix or '.png'}")


def _match_one(matcher: Matcher, photo: Path, draw_to: Path | None) -> dict[str, Any]:
    """One photo's entry in the report; an unreadable photo gets an ``error`` instead."""
    import cv2  # noqa: PLC0415 - optional extra
    import numpy as np  # noqa: PLC0415 - optional extra

    from notraining_agent.processors.keypoints import draw  # noqa: PLC0415 - optional extra
    from notraining_agent.processors.keypoints.features import (  # noqa: PLC0415 - optional extra
        ImageDecodeError,
        decode_gray,
    )
    from notraining_agent.processors.keypoints.matcher import match_photo  # noqa: PLC0415

    entry: dict[str, Any] = {"photo": str(photo)}
    try:
        data = photo.read_bytes()
        gray = decode_gray(data)
    except (OSError, ImageDecodeError) as exc:
        entry["error"] = f"cannot read the photo: {exc}"
        return entry
    start = time.perf_counter()
    detections = match_photo(matcher, gray)
    entry.update(
        width=int(gray.shape[1]),
        height=int(gray.shape[0]),
        elapsed_ms=round((time.perf_counter() - start) * 1000, 1),
        detections=[_detection_json(d) for d in detections],
    )
    if draw_to is not None:
        colour = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
        if colour is None:  # a format only Pillow reads: draw on the grey version
            colour = cv2.cvtColor(gray, cv2.COLOR_GRAY2BGR)
        try:
            entry["drawn"] = str(draw.write(draw_to, cast("Image", colour), detections))
        except (OSError, ValueError) as exc:
            entry["error"] = f"cannot write {draw_to}: {exc}"
    return entry


def _detection_json(det: Detection) -> dict[str, Any]:
    return {
        "art": det.name,
        "inliers": det.inliers,
        "confidence": round(det.confidence, 3),
        "corners": [[round(float(x), 1), round(float(y), 1)] for x, y in det.corners],
    }
