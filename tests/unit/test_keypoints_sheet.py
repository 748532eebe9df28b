"""The contact sheet: every art as a thumbnail, framed by its verdict, with its figures."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
from notraining_agent.processors.keypoints import sheet
from notraining_agent.processors.keypoints.features import decode_gray, extract
from notraining_testkit.emulators import artgen


def _tile(name: str, entry: dict[str, object]) -> sheet.Tile:
    gray = decode_gray(artgen.generate_art(7, size=(640, 480)))
    thumb, scale = sheet.thumbnail(gray)
    points = extract(gray, "sift", 200).points * scale
    return sheet.Tile(name, thumb, points.astype(np.float32), entry)


def test_verdicts_follow_the_manifest_entry() -> None:
    """Green when fine, orange for hard or near-duplicate arts, red for no texture or failure."""
    fine = {"status": "enrolled", "warnings": [], "near_duplicates": [], "confusions": []}
    assert sheet.verdict(fine) == (sheet.GREEN, "ok")
    hard = {**fine, "warnings": ["a.png: recognised in 3 of 7 synthetic photos (...)"]}
    assert sheet.verdict(hard) == (sheet.ORANGE, "hard to find")
    twin = {**fine, "near_duplicates": [{"name": "b.png", "distance": 2}]}
    assert sheet.verdict(twin) == (sheet.ORANGE, "near-duplicate of b.png")
    flat = {**fine, "warnings": ["f.png: too little texture (0 keypoints, needs 60); ..."]}
    assert sheet.verdict(flat) == (sheet.RED, "too little texture")
    assert sheet.verdict({"status": "failed"}) == (sheet.RED, "not enrolled")


def test_sheet_shows_every_art_with_its_frame(tmp_path: Path) -> None:
    """Seven arts make two rows of six cells; each cell is framed in its verdict's colour."""
    entry = {"status": "enrolled", "warnings": [], "features": 200, "recall": 1.0}
    tiles = [_tile(f"art_{i}.png", entry) for i in range(6)]
    tiles.append(sheet.Tile("broken.txt", None, np.zeros((0, 2), np.float32), {"status": "failed"}))
    written = sheet.write(tmp_path, tiles)
    assert written == tmp_path / "contact-sheet.png"
    image = cv2.imread(str(written), cv2.IMREAD_COLOR)
    cell_w, cell_h = sheet.THUMB + 16, sheet.THUMB + sheet.CAPTION + 16
    assert image.shape == (2 * cell_h, 6 * cell_w, 3)
    # The frame's top edge, just above each thumbnail.
    assert tuple(int(v) for v in image[5, 8 + sheet.THUMB // 2]) == sheet.GREEN
    assert tuple(int(v) for v in image[cell_h + 5, 8 + sheet.THUMB // 2]) == sheet.RED
    # Keypoint dots are drawn on the thumbnails.
    first = image[8 : 8 + sheet.THUMB, 8 : 8 + sheet.THUMB]
    assert (np.abs(first.astype(int) - np.array(sheet.DOT)).sum(axis=2) == 0).sum() > 50
