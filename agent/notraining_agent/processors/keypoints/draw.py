"""The photo with each detected art outlined and named: what ``match --draw`` writes."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import cv2
import numpy as np

from notraining_agent.processors.keypoints.synth import Image
from notraining_agent.processors.keypoints.verify import Detection

PALETTE: tuple[tuple[int, int, int], ...] = (
    (0, 200, 255),
    (255, 80, 0),
    (0, 220, 0),
    (255, 0, 200),
    (0, 80, 255),
    (255, 220, 0),
    (160, 0, 255),
    (0, 255, 160),
)
"""BGR colours that stand out against shop shelves, cycled over detections."""


def draw(photo: Image, detections: Sequence[Detection]) -> Image:
    """A copy of ``photo`` (BGR) with every detection's outline and label."""
    canvas = photo.copy()
    height, width = canvas.shape[:2]
    thickness = max(2, round(max(width, height) / 400))
    font_scale = max(0.6, max(width, height) / 1600)
    for number, det in enumerate(detections):
        colour = PALETTE[number % len(PALETTE)]
        outline = np.round(det.corners).astype(np.int32).reshape(-1, 1, 2)
        cv2.polylines(canvas, [outline], isClosed=True, color=colour, thickness=thickness)
        label = f"{det.name} ({det.inliers}, {det.confidence:.2f})"
        (text_w, text_h), base = cv2.getTextSize(
            label, cv2.FONT_HERSHEY_SIMPLEX, font_scale, thickness
        )
        # Above the art's own top-left corner, kept inside the picture.
        anchor = det.corners[0]
        x = int(np.clip(anchor[0], 0, max(0, width - text_w - 4)))
        y = int(np.clip(anchor[1] - base - 4, text_h + 4, height - base))
        cv2.rectangle(canvas, (x, y - text_h - 4), (x + text_w + 4, y + base), colour, -1)
        cv2.putText(
            canvas,
            label,
            (x + 2, y),
            cv2.FONT_HERSHEY_SIMPLEX,
            font_scale,
            (0, 0, 0),
            thickness,
            cv2.LINE_AA,
        )
    return canvas


def write(path: Path, photo: Image, detections: Sequence[Detection]) -> Path:
    """Draw the detections and save the picture; the format follows the file's extension."""
    try:
        ok, encoded = cv2.imencode(path.suffix or ".png", draw(photo, detections))
    except cv2.error as exc:
        raise ValueError(f"cannot encode a picture as {path.suffix!r}; use .png or .jpg") from exc
    if not ok:
        raise ValueError(f"cannot encode a picture as {path.suffix!r}; use .png or .jpg")
    path.write_bytes(encoded.tobytes())
    return path
