"""The plausible-only homography fit: right placements win over folded chance ones."""

from __future__ import annotations

import cv2
import numpy as np
from notraining_agent.processors.keypoints import ransac

OUTLINE = np.array([[0, 0], [400, 0], [400, 300], [0, 300]], np.float32)


def _truth() -> np.ndarray:
    placed = np.array([[600, 200], [900, 220], [890, 450], [610, 430]], np.float32)
    return cv2.getPerspectiveTransform(OUTLINE, placed)


def test_twelve_true_matches_among_chance_ones_are_found() -> None:
    """12 matches of the true placement among 70 chance pairs (the storm sky's ratio):
    the fit lands on the truth and counts them."""
    rng = np.random.default_rng(3)
    src_true = rng.uniform([0, 0], [400, 300], (12, 2)).astype(np.float32)
    dst_true = cv2.perspectiveTransform(src_true.reshape(-1, 1, 2), _truth()).reshape(-1, 2)
    src_noise = rng.uniform([0, 0], [400, 300], (70, 2)).astype(np.float32)
    dst_noise = rng.uniform([0, 0], [1600, 1200], (70, 2)).astype(np.float32)
    src = np.concatenate([src_true, src_noise])
    dst = np.concatenate([dst_true, dst_noise]).astype(np.float32)
    fitted = ransac.fit(src, dst, OUTLINE, needed=8, radius=5.0)
    assert fitted is not None
    homography, agreed = fitted
    assert agreed[:12].all()
    placed = cv2.perspectiveTransform(OUTLINE.reshape(-1, 1, 2), homography).reshape(4, 2)
    truth = cv2.perspectiveTransform(OUTLINE.reshape(-1, 1, 2), _truth()).reshape(4, 2)
    assert float(np.abs(placed - truth).max()) < 2.0


def test_matches_that_only_agree_on_a_folded_placement_give_nothing() -> None:
    """Matches consistent only with a mirror image are refused, however many."""
    mirror = _truth() @ np.array([[-1, 0, 400], [0, 1, 0], [0, 0, 1]], np.float64)
    rng = np.random.default_rng(4)
    src = rng.uniform([0, 0], [400, 300], (30, 2)).astype(np.float32)
    dst = cv2.perspectiveTransform(src.reshape(-1, 1, 2), mirror).reshape(-1, 2)
    assert ransac.fit(src, dst.astype(np.float32), OUTLINE, needed=8, radius=5.0) is None


def test_too_few_matches_give_nothing() -> None:
    """Fewer matches than needed: no fit is tried."""
    src = np.zeros((5, 2), np.float32)
    assert ransac.fit(src, src, OUTLINE, needed=8, radius=5.0) is None


def test_each_model_maps_its_sample_exactly_and_collinear_samples_are_dropped() -> None:
    """Each model maps its sample's four art points onto its four photo points; a sample
    with three points on one line has no homography and is left out, not made up."""
    rng = np.random.default_rng(5)
    src = rng.uniform([0, 0], [400, 300], (40, 2))
    dst = rng.uniform([0, 0], [1600, 1200], (40, 2))
    src[3] = (src[0] + src[1]) / 2  # samples holding points 0, 1 and 3 are degenerate
    samples = np.array([[0, 1, 2, 4], [5, 6, 7, 8], [0, 1, 3, 9], [10, 11, 12, 13]])
    models = ransac._homographies(src, dst, samples)
    assert len(models) == 3
    for model, sample in zip(models, samples[[0, 1, 3]], strict=True):
        mapped = cv2.perspectiveTransform(src[sample].reshape(-1, 1, 2), model).reshape(4, 2)
        np.testing.assert_allclose(mapped, dst[sample], atol=1e-6)
