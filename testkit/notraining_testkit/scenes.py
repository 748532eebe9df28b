"""Generated store photos with known contents: the ground truth for tests and the demo.

A scene is a cluttered shelf with a few of the package's arts warped in (perspective,
rotation, size, lighting), perhaps a foreign poster or two that is not in the package,
a camera's blur and noise, saved as a JPEG. ``truth`` says which arts are where.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass
from typing import cast

import cv2
import numpy as np
from notraining_agent.processors.keypoints import synth

Corners = tuple[tuple[float, float], ...]
DEFAULT_SIZE = (1600, 1200)
MAX_ATTEMPTS = 60


@dataclass(frozen=True)
class Scene:
    """A JPEG photo and, for each art shown, its index in ``arts`` and its corners."""

    photo: bytes
    truth: list[tuple[int, Corners]]


def make_scene(
    arts: Sequence[bytes],
    seed: int,
    *,
    absent: Collection[int] = (),
    count: int | None = None,
    distractors: Sequence[bytes] = (),
    size: tuple[int, int] = DEFAULT_SIZE,
    quality: int = 85,
) -> Scene:
    """A store photo showing ``count`` (default 1-3) arts chosen outside ``absent``.

    ``distractors`` are posters that are not in the package: they are pasted too but
    never appear in ``truth``, so a detector that names them is wrong.
    """
    rng = np.random.default_rng(seed)
    width, height = size
    skipped = set(absent)
    eligible = [i for i in range(len(arts)) if i not in skipped]
    if count is None:
        count = int(rng.integers(1, 4))
    chosen = [int(i) for i in rng.permutation(eligible)[: min(count, len(eligible))]]
    photo = synth.clutter(rng, width, height, 3)
    taken: list[tuple[float, float, float, float]] = []
    truth: list[tuple[int, Corners]] = []
    for item, data in [(i, arts[i]) for i in chosen] + [(-1, d) for d in distractors]:
        decoded = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
        if decoded is None:
            raise ValueError(f"art {item} is not an image OpenCV can decode")
        image = cast(synth.Image, decoded)
        corners = _place(rng, image, size, taken)
        if corners is None:
            continue
        synth.paste(photo, image, corners, gain=float(rng.uniform(0.75, 1.15)))
        if item >= 0 and rng.random() < 0.2:
            synth.occlude(photo, rng, corners, 0.15)
        if item >= 0:
            truth.append((item, tuple((float(x), float(y)) for x, y in corners)))
    photo = synth.shade(photo, rng, float(rng.uniform(0.8, 1.1)), float(rng.uniform(0.85, 1.15)))
    photo = synth.blur(photo, float(rng.uniform(0.4, 1.1)))
    photo = synth.noisy(photo, rng, 3.0)
    return Scene(synth.jpeg(photo, quality), truth)


def _place(
    rng: np.random.Generator,
    image: synth.Image,
    size: tuple[int, int],
    taken: list[tuple[float, float, float, float]],
) -> synth.Quad | None:
    """Corners for one poster inside the frame and clear of the others, or None if full."""
    width, height = size
    art_size = (image.shape[1], image.shape[0])
    for _ in range(MAX_ATTEMPTS):
        long_side = float(rng.uniform(0.18, 0.36)) * max(width, height)
        centre = (float(rng.uniform(0, width)), float(rng.uniform(0, height)))
        angle = float(rng.uniform(-20, 20))
        corners = synth.quad(rng, art_size, centre, long_side, angle=angle, tilt=0.08)
        if claim(corners, size, taken):
            return corners
    return None


Box = tuple[float, float, float, float]


def claim(corners: synth.Quad, size: tuple[int, int], taken: list[Box]) -> bool:
    """Whether a poster at ``corners`` lies inside the frame and clear of ``taken``; if so,
    its bounding box joins ``taken``. Shared by the generated and the real-photo scenes."""
    x0, y0 = corners.min(axis=0)
    x1, y1 = corners.max(axis=0)
    if x0 < 0 or y0 < 0 or x1 > size[0] or y1 > size[1]:
        return False
    box = (float(x0), float(y0), float(x1), float(y1))
    if any(_intersects(box, other) for other in taken):
        return False
    taken.append(box)
    return True


def _intersects(a: Box, b: Box) -> bool:
    return a[0] < b[2] and b[0] < a[2] and a[1] < b[3] and b[1] < a[3]
