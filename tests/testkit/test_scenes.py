"""Generated store photos with known contents."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
from notraining_testkit.emulators import artgen
from notraining_testkit.scenes import make_scene

ARTS = [artgen.generate_art(seed, size=(320, 240)) for seed in range(6)]


def test_scene_is_a_jpeg_with_its_truth() -> None:
    """The photo decodes to the requested size; truth names 1-3 distinct arts with 4 corners."""
    scene = make_scene(ARTS, 1, size=(800, 600))
    photo = cv2.imdecode(np.frombuffer(scene.photo, np.uint8), cv2.IMREAD_COLOR)
    assert photo is not None
    assert photo.shape == (600, 800, 3)
    assert scene.photo[:2] == b"\xff\xd8"
    assert 1 <= len(scene.truth) <= 3
    indexes = [i for i, _ in scene.truth]
    assert len(set(indexes)) == len(indexes)
    for _, corners in scene.truth:
        assert len(corners) == 4
        assert all(0 <= x <= 800 and 0 <= y <= 600 for x, y in corners)


def test_same_seed_same_scene() -> None:
    """Scenes are reproducible: the same seed gives the same bytes and truth."""
    assert make_scene(ARTS, 7, size=(640, 480)) == make_scene(ARTS, 7, size=(640, 480))
    assert make_scene(ARTS, 7, size=(640, 480)).photo != make_scene(ARTS, 8, size=(640, 480)).photo


def test_absent_arts_are_never_shown() -> None:
    """Arts listed in absent never appear, whatever the seed."""
    for seed in range(10):
        scene = make_scene(ARTS, seed, absent={0, 1, 2}, count=3, size=(640, 480))
        assert {i for i, _ in scene.truth} <= {3, 4, 5}


def test_distractors_are_pasted_but_not_in_the_truth() -> None:
    """A foreign poster changes the photo but is not listed."""
    plain = make_scene(ARTS, 3, count=0, size=(640, 480))
    busy = make_scene(ARTS, 3, count=0, size=(640, 480), distractors=[artgen.generate_art(99)])
    assert plain.truth == busy.truth == []
    assert plain.photo != busy.photo


def test_placements_do_not_overlap() -> None:
    """The bounding boxes of the arts shown never intersect."""
    scene = make_scene(ARTS, 5, count=3)
    boxes = [
        (min(x for x, _ in c), min(y for _, y in c), max(x for x, _ in c), max(y for _, y in c))
        for _, c in scene.truth
    ]
    for i, a in enumerate(boxes):
        for b in boxes[i + 1 :]:
            assert a[2] <= b[0] or b[2] <= a[0] or a[3] <= b[1] or b[3] <= a[1]


def test_bad_art_bytes_are_reported() -> None:
    """An art that is not an image raises ValueError naming its index."""
    with pytest.raises(ValueError, match="art 0"):
        make_scene([b"junk"], 1, count=1)
