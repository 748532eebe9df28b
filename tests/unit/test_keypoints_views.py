"""The matchability check: synthetic store photos of each art, matched against the index."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
from notraining_agent.processors.keypoints.features import Gray, decode_gray, normalise
from notraining_agent.processors.keypoints.matcher import Matcher
from notraining_agent.processors.keypoints.options import CONDITIONS, KeypointsOptions
from notraining_agent.processors.keypoints.stages import index_from_images
from notraining_agent.processors.keypoints.views import (
    MIN_MARGIN,
    MIN_VIEW_FEATURES,
    VIEW_PHOTO_FEATURES,
    check_art,
    make_view,
    view_features,
)
from notraining_testkit.emulators import artgen


def _art(seed: int) -> Gray:
    return normalise(decode_gray(artgen.generate_art(seed)), 1024)[0]


@pytest.mark.parametrize("condition", CONDITIONS)
def test_each_condition_makes_a_photo_with_the_art_inside(condition: str) -> None:
    """Every view is a grey image of the art on a strip of shelf: its corners inside, away
    from the border, and the art filling most of the frame (the rest is clutter)."""
    view = make_view(_art(1), condition, seed=5)
    height, width = view.image.shape
    assert view.condition == condition
    assert (view.corners >= MIN_MARGIN - 1).all()
    assert (view.corners[:, 0] <= width - MIN_MARGIN + 1).all()
    assert (view.corners[:, 1] <= height - MIN_MARGIN + 1).all()
    art_area = cv2.contourArea(view.corners)
    assert art_area >= 0.3 * width * height


def test_views_are_deterministic_and_scaled() -> None:
    """The same seed gives the same view; 'scale' shows the art at a quarter of 1024 px."""
    art = _art(2)
    first, second = make_view(art, "scale", 3), make_view(art, "scale", 3)
    assert np.array_equal(first.image, second.image)
    span = first.corners.max(axis=0) - first.corners.min(axis=0)
    assert 200 < float(span.max()) < 330


def test_feature_budget_follows_the_area() -> None:
    """A view gets as many features per pixel as a full view, with a floor."""
    assert view_features(np.zeros((1200, 1600), np.uint8)) == VIEW_PHOTO_FEATURES
    assert view_features(np.zeros((10, 10), np.uint8)) == MIN_VIEW_FEATURES


def test_textured_art_is_recognised_in_every_view() -> None:
    """A rich poster is found in all seven conditions, with no confusion."""
    images = {f"a{i}.png": artgen.generate_art(i) for i in range(4)}
    matcher = Matcher(index_from_images(images, KeypointsOptions()))
    views_done: list[None] = []
    result = check_art(matcher, 0, _art(0), seed=1, on_view=lambda: views_done.append(None))
    assert result.views == len(CONDITIONS) == len(views_done)
    assert result.recall >= 6 / 7
    assert result.confusions == {}


def test_flat_art_is_never_recognised() -> None:
    """A single-colour art fails every view: recall 0, all conditions missed."""
    images = {"poster.png": artgen.generate_art(1), "flat.png": artgen.flat_art()}
    matcher = Matcher(index_from_images(images, KeypointsOptions()))
    flat = normalise(decode_gray(artgen.flat_art()), 1024)[0]
    result = check_art(matcher, 1, flat, seed=2, conditions=("scale", "blur"))
    assert result.recall == 0.0
    assert result.missed == ("scale", "blur")
