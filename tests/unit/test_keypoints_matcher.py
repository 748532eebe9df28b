"""Finding enrolled arts in photos end to end: the vote, every copy, overlapping detections."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
from notraining_agent.processors.keypoints import matcher as matcher_mod
from notraining_agent.processors.keypoints import synth
from notraining_agent.processors.keypoints.features import decode_gray
from notraining_agent.processors.keypoints.index import Index
from notraining_agent.processors.keypoints.matcher import FloatArray, Matcher, match_photo
from notraining_agent.processors.keypoints.options import KeypointsOptions
from notraining_agent.processors.keypoints.stages import index_from_images
from notraining_agent.processors.keypoints.synth import Quad
from notraining_agent.processors.keypoints.verify import Detection
from notraining_testkit.emulators import artgen
from notraining_testkit.scenes import make_scene

ARTS = [artgen.generate_art(seed) for seed in range(6)]
NAMES = [f"art_{i}.png" for i in range(len(ARTS))]


@pytest.fixture(scope="module")
def sift_index() -> Index:
    return index_from_images(dict(zip(NAMES, ARTS, strict=True)), KeypointsOptions())


def _corner_error(found: FloatArray, truth: tuple[tuple[float, float], ...]) -> float:
    expected = np.array(truth, dtype=np.float32)
    span = float(np.linalg.norm(expected.max(axis=0) - expected.min(axis=0)))
    return float(np.linalg.norm(found - expected, axis=1).mean()) / span


def test_finds_the_arts_of_a_scene_where_they_are(sift_index: Index) -> None:
    """Every art shown is found, with its corners within 3 % of its size, and nothing else."""
    matcher = Matcher(sift_index)
    for seed in range(3):
        scene = make_scene(ARTS, seed, count=3, distractors=[artgen.generate_art(900 + seed)])
        found = match_photo(matcher, decode_gray(scene.photo))
        assert sorted(d.art for d in found) == sorted(i for i, _ in scene.truth)
        for art, corners in scene.truth:
            detection = next(d for d in found if d.art == art)
            assert detection.name == NAMES[art]
            assert detection.inliers >= matcher.params.min_inliers
            assert 0.5 <= detection.confidence <= 1.0
            assert _corner_error(detection.corners, corners) < 0.03


def test_absent_arts_and_foreign_posters_are_not_reported(sift_index: Index) -> None:
    """A shelf with only posters from outside the package yields no detection."""
    matcher = Matcher(sift_index)
    foreign = [artgen.generate_art(500 + i) for i in range(3)]
    scene = make_scene(ARTS, 11, count=0, distractors=foreign)
    assert scene.truth == []
    assert match_photo(matcher, decode_gray(scene.photo)) == []


def test_orb_index_matches_too() -> None:
    """With ORB features the same scene is recognised."""
    options = KeypointsOptions(features="orb", art_features=1000)
    built = index_from_images(dict(zip(NAMES, ARTS, strict=True)), options)
    assert built.kind == "orb"
    scene = make_scene(ARTS, 4, count=2)
    found = match_photo(Matcher(built), decode_gray(scene.photo))
    assert sorted(d.art for d in found) == sorted(i for i, _ in scene.truth)


def test_a_duplicated_art_is_found_once() -> None:
    """Two identical arts in the package: a photo of it names one of them, not none or both."""
    images = {"a.png": ARTS[0], "copy.png": ARTS[0], "b.png": ARTS[1]}
    matcher = Matcher(index_from_images(images, KeypointsOptions()))
    scene = make_scene([ARTS[0]], 3, count=1)
    found = match_photo(matcher, decode_gray(scene.photo))
    assert len(found) == 1
    assert found[0].name in {"a.png", "copy.png"}


def test_empty_index_and_featureless_photo(sift_index: Index) -> None:
    """No arts, or a photo with nothing to match, give an empty list."""
    empty = Matcher(index_from_images({}, KeypointsOptions()))
    photo = decode_gray(make_scene(ARTS, 1, count=1).photo)
    assert match_photo(empty, photo) == []
    assert match_photo(Matcher(sift_index), np.full((480, 640), 128, np.uint8)) == []


def test_overlapping_detections_keep_the_strongest() -> None:
    """Of two detections over the same place, only the one with more inliers stays."""
    square = np.array([[0, 0], [100, 0], [100, 100], [0, 100]], np.float32)
    strong = Detection(0, "a", 80, 0.99, square)
    weak = Detection(1, "b", 20, 0.7, square + 5)
    apart = Detection(2, "c", 15, 0.6, square + 300)
    kept = matcher_mod._suppress_overlaps([strong, weak, apart], 0.5)
    assert [d.name for d in kept] == ["a", "c"]


def _shelf_with_copies(art: bytes, centres: list[tuple[float, float]]) -> tuple[bytes, list[Quad]]:
    """A 1600x1200 shelf showing one poster at each centre, and where each copy is."""
    rng = np.random.default_rng(len(centres))
    photo = synth.clutter(rng, 1600, 1200, 3)
    image = cv2.imdecode(np.frombuffer(art, np.uint8), cv2.IMREAD_COLOR)
    size = (int(image.shape[1]), int(image.shape[0]))
    quads = []
    for number, centre in enumerate(centres):
        quad = synth.quad(rng, size, centre, 420.0, angle=8.0 * (number - 1), tilt=0.05)
        synth.paste(photo, image, quad)
        quads.append(quad)
    photo = synth.noisy(synth.blur(photo, 0.8), rng, 3.0)
    return synth.jpeg(photo, 85), quads


@pytest.mark.parametrize(
    "centres",
    [
        [(400.0, 350.0), (1200.0, 850.0)],
        [(300.0, 300.0), (1250.0, 330.0), (800.0, 900.0)],
    ],
)
def test_every_copy_of_an_art_is_found_once(
    sift_index: Index, centres: list[tuple[float, float]]
) -> None:
    """Two or three copies of one poster give as many detections, each on its own copy."""
    photo, quads = _shelf_with_copies(ARTS[2], centres)
    found = match_photo(Matcher(sift_index), decode_gray(photo))
    assert [d.art for d in found] == [2] * len(quads)
    claimed = set()
    for detection in found:
        errors = [_corner_error(detection.corners, tuple(map(tuple, q))) for q in quads]
        best = int(np.argmin(errors))
        assert errors[best] < 0.03
        claimed.add(best)
    assert len(claimed) == len(quads)  # no copy found twice, none missed
