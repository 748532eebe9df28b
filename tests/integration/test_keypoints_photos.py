"""Recognition on real photographs: the Debian wallpaper set of ``notraining_testkit.photoset``.

34 arts cut from real photographs are enrolled by the real processor, then 80 generated
store photos (real perspective, 15-50 % of the photo's width, rotation, blur, motion
blur, glare, occlusion, JPEG noise, posters from outside the package, some arts two or
three times) are matched. Every copy counts: a detection is right when it names an art
shown there and its corners fall on a copy not yet claimed. The floors are issue 13's
goals, recall >= 0.95 and precision >= 0.99; the matcher reaches 0.956 (173 of 181) and
0.994 (one copy placed 41 px off, beyond the tolerance). The misses are soft, low-texture
photographs with nine or fewer true matches (storm sky, a bulb on grey, a clock face, an
Aqua 60 % occluded).
The set is built on first use and cached; without its Debian packages the test is
skipped on a laptop and fails under CI.
"""

from __future__ import annotations

import hashlib
import multiprocessing
import os
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from notraining_agent.job.spec import JobSpec
from notraining_agent.processors.base import Art, ProcessorContext
from notraining_agent.processors.keypoints import enroll, index
from notraining_agent.processors.keypoints.features import decode_gray
from notraining_agent.processors.keypoints.matcher import Matcher, match_photo
from notraining_agent.processors.keypoints.options import KeypointsOptions
from notraining_testkit import photoset

pytestmark = pytest.mark.integration

PLACEMENT_TOLERANCE = 0.1
"""A detection is on a copy when its corners are, on average, within this fraction of
the copy's size from the truth."""

RECALL_FLOOR = 0.95
"""Issue 13's goal: 172 of the 181 copies."""
PRECISION_FLOOR = 0.99

_state: dict[str, Any] = {}


def _photo_set() -> photoset.PhotoSet:
    if not photoset.available():
        message = "the real-photo set needs apt-get install " + " ".join(photoset.DEBIAN_PACKAGES)
        if os.environ.get("CI") == "true":
            pytest.fail(message)
        pytest.skip(message)
    return photoset.ensure()


def _start_worker(index_dir: str) -> None:
    _state["matcher"] = Matcher(index.load(Path(index_dir)))


def _score(
    job: tuple[str, list[tuple[int, tuple[tuple[float, float], ...]]]],
) -> tuple[int, int, int]:
    """True positives, false positives and false negatives of one scene, copy by copy."""
    photo, truth = job
    found = match_photo(_state["matcher"], decode_gray(Path(photo).read_bytes()))
    claimed = [False] * len(truth)
    right = 0
    for detection in found:
        for number, (art, corners) in enumerate(truth):
            expected = np.array(corners, np.float32)
            span = float(np.linalg.norm(expected.max(axis=0) - expected.min(axis=0)))
            error = float(np.linalg.norm(detection.corners - expected, axis=1).mean())
            if not claimed[number] and art == detection.art and error <= PLACEMENT_TOLERANCE * span:
                claimed[number] = True
                right += 1
                break
    return right, len(found) - right, claimed.count(False)


# Building the set the first time, enrolling 34 photographs and matching 80 scenes take
# about two CPU minutes: more than the suite's default per-test timeout on a busy machine.
@pytest.mark.timeout(900)
async def test_recall_and_precision_over_real_photographs(tmp_path: Path) -> None:
    """Recall >= RECALL_FLOOR and precision >= 0.99 over every copy of every art in 80 scenes."""
    built = _photo_set()
    arts = []
    for path in built.arts:
        data = path.read_bytes()
        arts.append(Art(path.name, path, ("zip",), hashlib.sha256(data).hexdigest(), len(data)))
    job = JobSpec("ntd-photos", None, "AR", "retail", "promo", "POP", None, ())
    ctx = ProcessorContext(
        job, tuple(arts), (), tmp_path / "work", tmp_path / "out", lambda done, total: None
    )
    # The matchability check is left out: its figures are not what this test scores.
    await enroll(ctx, KeypointsOptions(conditions=()))
    assert index.load(ctx.output_dir).names == tuple(p.name for p in built.arts)

    jobs = [(str(photo), truth) for photo, truth in zip(built.scenes, built.truth, strict=True)]
    workers = len(os.sched_getaffinity(0))
    context = multiprocessing.get_context("spawn")
    init = (str(ctx.output_dir),)
    with ProcessPoolExecutor(workers, context, initializer=_start_worker, initargs=init) as pool:
        scores = list(pool.map(_score, jobs))
    right = sum(s[0] for s in scores)
    wrong = sum(s[1] for s in scores)
    missed = sum(s[2] for s in scores)
    recall = right / (right + missed)
    precision = right / max(1, right + wrong)
    print(
        f"\nreal photographs: {len(jobs)} scenes, {right + missed} art copies shown, "
        f"recall {recall:.3f}, precision {precision:.3f} ({wrong} wrong detections)"
    )
    assert recall >= RECALL_FLOOR
    assert precision >= PRECISION_FLOOR
