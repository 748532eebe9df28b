"""The picture ``match --draw`` writes: detections outlined and named."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest
from notraining_agent.processors.keypoints.draw import draw, write
from notraining_agent.processors.keypoints.verify import Detection

CORNERS = np.array([[100, 100], [300, 110], [290, 250], [110, 240]], np.float32)


def test_outline_and_label_are_drawn() -> None:
    """Pixels on the outline change colour; the input photo is left untouched."""
    photo = np.full((400, 500, 3), 128, np.uint8)
    drawn = draw(photo, [Detection(0, "art_001.png", 42, 0.97, CORNERS)])
    assert (photo == 128).all()
    assert tuple(drawn[105, 200]) != (128, 128, 128)  # on the top edge
    assert tuple(drawn[175, 200]) == (128, 128, 128)  # inside, untouched
    label_band = drawn[60:100, 100:300]
    assert (label_band != 128).any()


def test_label_stays_inside_the_picture() -> None:
    """An art touching the top edge still gets a readable label inside the frame."""
    photo = np.full((200, 200, 3), 128, np.uint8)
    corners = np.array([[0, 0], [150, 0], [150, 100], [0, 100]], np.float32)
    drawn = draw(photo, [Detection(0, "a-rather-long-name.png", 30, 0.9, corners)])
    assert drawn.shape == photo.shape


def test_write_png_and_refuse_unknown_extension(tmp_path: Path) -> None:
    """write() saves a PNG that decodes; an extension OpenCV cannot encode is a ValueError."""
    photo = np.zeros((100, 100, 3), np.uint8)
    out = write(tmp_path / "out.png", photo, [])
    decoded = cv2.imread(str(out))
    assert decoded is not None
    assert decoded.shape == (100, 100, 3)
    with pytest.raises(ValueError, match="encode"):
        write(tmp_path / "out.nope", photo, [])
