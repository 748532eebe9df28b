"""``contact-sheet.png``: every art of the package in one picture, with how it will fare.

A reviewer should see at a glance which arts will be hard to find in a store: each
thumbnail shows its keypoints as dots (where the art has texture, and how much), its
keypoint count and matchability recall, and a frame coloured by verdict: green fine,
orange a warning (hard to recognise, near-duplicate, confused with another art), red
unusable (too little texture, or not enrolled at all) with the reason written on it.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

import cv2
import numpy as np

from notraining_agent.processors.keypoints.features import Gray, Points
from notraining_agent.processors.keypoints.synth import Image

SHEET_FILE = "contact-sheet.png"
THUMB = 200
"""Thumbnails fit in a THUMB x THUMB square."""
CAPTION = 58
"""Pixels under each thumbnail for its name and figures."""
COLUMNS = 6
MAX_DOTS = 400
"""Keypoints drawn per thumbnail: enough to show density without hiding the art."""

GREEN = (60, 170, 60)
ORANGE = (0, 150, 255)
RED = (40, 40, 220)
DOT = (0, 230, 255)


@dataclass(frozen=True)
class Tile:
    """One art on the sheet: its grey thumbnail with keypoints in thumbnail pixels."""

    name: str
    thumb: Gray | None
    points: Points
    entry: Mapping[str, Any]


def thumbnail(gray: Gray) -> tuple[Gray, float]:
    """``gray`` shrunk to fit the tile, and the factor applied to its coordinates."""
    height, width = gray.shape[:2]
    scale = min(1.0, THUMB / max(height, width))
    size = (max(1, round(width * scale)), max(1, round(height * scale)))
    return cast(Gray, cv2.resize(gray, size, interpolation=cv2.INTER_AREA)), scale


def verdict(entry: Mapping[str, Any]) -> tuple[tuple[int, int, int], str]:
    """The frame colour and the one-line reason for an art's manifest entry."""
    if entry.get("status") != "enrolled":
        return RED, "not enrolled"
    warnings = [str(w) for w in entry.get("warnings", [])]
    if any("too little texture" in w for w in warnings):
        return RED, "too little texture"
    if any("recognised in" in w for w in warnings):
        return ORANGE, "hard to find"
    if entry.get("near_duplicates"):
        return ORANGE, f"near-duplicate of {entry['near_duplicates'][0]['name']}"
    if entry.get("confusions"):
        return ORANGE, f"confused with {entry['confusions'][0]['name']}"
    return GREEN, "ok"


def render(tiles: Sequence[Tile]) -> Image:
    """The sheet: tiles in rows of COLUMNS, each framed, dotted and captioned."""
    columns = max(1, min(COLUMNS, len(tiles)))
    rows = max(1, math.ceil(len(tiles) / columns))
    cell_w, cell_h = THUMB + 16, THUMB + CAPTION + 16
    sheet = np.full((rows * cell_h, columns * cell_w, 3), 255, np.uint8)
    for number, tile in enumerate(tiles):
        x0 = (number % columns) * cell_w + 8
        y0 = (number // columns) * cell_h + 8
        _draw_tile(sheet, tile, x0, y0)
    return cast(Image, sheet)


def _draw_tile(sheet: Image, tile: Tile, x0: int, y0: int) -> None:
    colour, reason = verdict(tile.entry)
    cv2.rectangle(sheet, (x0 - 4, y0 - 4), (x0 + THUMB + 3, y0 + THUMB + 3), colour, 4)
    if tile.thumb is not None:
        height, width = tile.thumb.shape[:2]
        left, top = x0 + (THUMB - width) // 2, y0 + (THUMB - height) // 2
        sheet[top : top + height, left : left + width] = cv2.cvtColor(
            tile.thumb, cv2.COLOR_GRAY2BGR
        )
        step = max(1, len(tile.points) // MAX_DOTS)
        for x, y in tile.points[::step]:
            cv2.circle(sheet, (left + round(float(x)), top + round(float(y))), 1, DOT, -1)
    features = tile.entry.get("features")
    recall = tile.entry.get("recall")
    figures = f"{features if features is not None else '-'} kp"
    figures += f"  recall {recall:.2f}" if isinstance(recall, float | int) else "  recall -"
    lines = [(tile.name[:30], (0, 0, 0)), (figures, (60, 60, 60)), (reason[:32], colour)]
    for row, (text, ink) in enumerate(lines):
        origin = (x0, y0 + THUMB + 18 + 17 * row)
        cv2.putText(sheet, text, origin, cv2.FONT_HERSHEY_SIMPLEX, 0.42, ink, 1, cv2.LINE_AA)


def write(directory: Path, tiles: Sequence[Tile]) -> Path:
    """Render the sheet into ``directory/contact-sheet.png`` (temp file, then rename)."""
    ok, encoded = cv2.imencode(".png", render(tiles))
    if not ok:
        raise ValueError("the contact sheet could not be encoded as PNG")
    target = directory / SHEET_FILE
    partial = directory / (SHEET_FILE + ".partial")
    partial.write_bytes(encoded.tobytes())
    partial.replace(target)
    return target
