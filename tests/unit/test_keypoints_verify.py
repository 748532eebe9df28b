"""Verifying one shortlisted art: confidence, plausible outlines, detections' scale."""

from __future__ import annotations

import numpy as np
import pytest
from notraining_agent.processors.keypoints import verify as verify_mod
from notraining_agent.processors.keypoints.verify import Detection, confidence


def test_confidence_is_half_at_the_threshold_and_grows() -> None:
    """0.5 at min_inliers, about 0.95 at twice it, always increasing, below 1."""
    assert confidence(12, 12) == pytest.approx(0.5)
    assert confidence(24, 12) == pytest.approx(0.95, abs=0.01)
    values = [confidence(n, 12) for n in range(0, 200, 5)]
    assert values == sorted(values)
    assert all(0.0 < v <= 1.0 for v in values)


def test_implausible_shapes_are_rejected() -> None:
    """A mirrored, a collapsed and a wildly stretched quadrilateral are not an art."""
    art = np.array([[0, 0], [100, 0], [100, 50], [0, 50]], np.float32)
    plausible = verify_mod._plausible
    assert plausible(art * 2 + 10, art)
    assert not plausible(art[::-1].copy(), art)  # mirror image: counter-clockwise
    assert not plausible(art * 0.1, art)  # 10x5 pixels
    stretched = np.array([[0, 0], [1000, 0], [1000, 50], [0, 50]], np.float32)
    assert not plausible(stretched, art)  # 10x wider, same height


def test_scaled_detection_maps_back_to_the_photo() -> None:
    """Corners found on a downscaled photo are divided by the scale."""
    det = Detection(0, "a", 30, 0.9, np.array([[10, 20]] * 4, np.float32))
    assert det.scaled(0.5).corners.tolist() == [[20.0, 40.0]] * 4
