"""Store photos of real-photograph arts, harder than ``scenes``: what a phone sees in a shop.

Each scene is a shelf with one to three arts of the package (one of them sometimes
twice) and one or two distractor posters that are not in the package. An art is seen
through a pinhole camera: turned up to 35 degrees about its vertical axis and 20 about
its horizontal one, rotated up to 30 degrees in the picture, its width 15 to 50 % of the
photo's. Some arts are partly occluded (20-40 %) or under glare; the whole photo gets
defocus or motion blur, uneven light, sensor noise and JPEG compression.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import cast

import cv2
import numpy as np
import numpy.typing as npt
from notraining_agent.processors.keypoints import synth

from notraining_testkit.scenes import claim

Image = npt.NDArray[np.uint8]
Corners = tuple[tuple[float, float], ...]
MAX_ATTEMPTS = 80
WIDTH_RANGE = (0.15, 0.5)
"""An art's width in the photo, as a fraction of the photo's width."""


@dataclass(frozen=True)
class PhotoScene:
    """A JPEG photo and, for each art instance shown, its index and its corners."""

    photo: bytes
    truth: list[tuple[int, Corners]]


def camera_quad(
    size: tuple[int, int],
    centre: tuple[float, float],
    width: float,
    *,
    yaw: float,
    pitch: float,
    roll: float,
) -> synth.Quad:
    """Where a flat poster of ``size`` lands in a pinhole camera's picture.

    The poster, ``width`` pixels wide when seen face on, is turned by ``yaw`` and
    ``pitch`` (degrees) in space, projected with a 50 mm-like focal length, rotated
    by ``roll`` in the picture and centred on ``centre``; corners stay clockwise.
    """
    art_w, art_h = size
    half = np.array([art_w, art_h], np.float64) * (width / art_w) / 2
    plane = np.array([[-1, -1, 0], [1, -1, 0], [1, 1, 0], [-1, 1, 0]], np.float64)
    plane[:, :2] *= half
    a, b = math.radians(yaw), math.radians(pitch)
    turn_y = np.array([[math.cos(a), 0, math.sin(a)], [0, 1, 0], [-math.sin(a), 0, math.cos(a)]])
    turn_x = np.array([[1, 0, 0], [0, math.cos(b), -math.sin(b)], [0, math.sin(b), math.cos(b)]])
    focal = 2.5 * width
    points = plane @ (turn_x @ turn_y).T
    depth = points[:, 2] + focal
    projected = points[:, :2] * (focal / depth)[:, None]
    theta = math.radians(roll)
    spin = np.array([[math.cos(theta), -math.sin(theta)], [math.sin(theta), math.cos(theta)]])
    projected = projected @ spin.T
    projected += np.array(centre) - (projected.max(axis=0) + projected.min(axis=0)) / 2
    return cast(synth.Quad, projected.astype(np.float32))


def make_photo_scene(
    arts: Sequence[Image],
    distractors: Sequence[Image],
    seed: int,
    *,
    size: tuple[int, int] = (1600, 1200),
    quality: int | None = None,
) -> PhotoScene:
    """One store photo showing arts chosen by ``seed``; deterministic for a seed."""
    rng = np.random.default_rng([seed, 13])
    width, height = size
    photo = synth.clutter(rng, width, height, 3)
    count = int(rng.integers(1, 4))
    chosen = [int(i) for i in rng.permutation(len(arts))[:count]]
    if rng.random() < 0.3:
        chosen.append(chosen[0])  # the same poster twice on the shelf
        if rng.random() < 0.3:
            chosen.append(chosen[0])
    extra = [int(i) for i in rng.permutation(len(distractors))[: int(rng.integers(1, 3))]]
    taken: list[tuple[float, float, float, float]] = []
    truth: list[tuple[int, Corners]] = []
    for item, image in [(-1, distractors[i]) for i in extra] + [(i, arts[i]) for i in chosen]:
        corners = _place(rng, image, size, taken, small=item >= 0)
        if corners is None:
            continue
        synth.paste(photo, image, corners, gain=float(rng.uniform(0.7, 1.15)))
        if item < 0:
            continue
        effect = rng.random()
        if effect < 0.2:
            synth.occlude(photo, rng, corners, float(rng.uniform(0.2, 0.4)))
        elif effect < 0.35:
            _glare(photo, rng, corners)
        truth.append((item, tuple((float(x), float(y)) for x, y in corners)))
    photo = synth.shade(photo, rng, float(rng.uniform(0.75, 1.1)), float(rng.uniform(0.8, 1.2)))
    camera = rng.random()
    if camera < 0.25:
        photo = _motion_blur(photo, float(rng.uniform(4, 10)), float(rng.uniform(0, 180)))
    else:
        photo = synth.blur(photo, float(rng.uniform(0.3, 1.2)))
    photo = synth.noisy(photo, rng, float(rng.uniform(2, 5)))
    jpeg_quality = quality if quality is not None else int(rng.integers(55, 92))
    return PhotoScene(synth.jpeg(photo, jpeg_quality), truth)


def _place(
    rng: np.random.Generator,
    image: Image,
    size: tuple[int, int],
    taken: list[tuple[float, float, float, float]],
    *,
    small: bool,
) -> synth.Quad | None:
    """Corners for one poster inside the frame and clear of the others, or None if full."""
    width, height = size
    art_size = (int(image.shape[1]), int(image.shape[0]))
    for attempt in range(MAX_ATTEMPTS):
        # Later attempts try smaller posters: a crowded shelf still takes a small one.
        shrink = 1.0 - 0.5 * attempt / MAX_ATTEMPTS
        low, high = WIDTH_RANGE
        fraction = float(rng.uniform(low, high if small else 0.4)) * shrink
        art_width = max(low, fraction) * width
        # A portrait art as wide as a landscape one would not fit: cap its height too.
        art_width = min(art_width, 0.8 * height * art_size[0] / art_size[1])
        centre = (float(rng.uniform(0, width)), float(rng.uniform(0, height)))
        corners = camera_quad(
            art_size,
            centre,
            art_width,
            yaw=float(rng.uniform(-35, 35)),
            pitch=float(rng.uniform(-20, 20)),
            roll=float(rng.uniform(-30, 30)),
        )
        if claim(corners, size, taken):
            return corners
    return None


def _glare(photo: Image, rng: np.random.Generator, corners: synth.Quad) -> None:
    """A shop light's reflection: a bright soft ellipse over part of the poster, in place."""
    x0, y0 = corners.min(axis=0)
    x1, y1 = corners.max(axis=0)
    centre = (float(rng.uniform(x0, x1)), float(rng.uniform(y0, y1)))
    axes = (float(x1 - x0) * float(rng.uniform(0.12, 0.3)), float(y1 - y0) * 0.2)
    mask = np.zeros(photo.shape[:2], np.float32)
    cv2.ellipse(
        mask,
        (round(centre[0]), round(centre[1])),
        (max(1, round(axes[0])), max(1, round(axes[1]))),
        float(rng.uniform(0, 180)),
        0,
        360,
        1.0,
        -1,
    )
    mask = cast(npt.NDArray[np.float32], cv2.GaussianBlur(mask, (0, 0), max(2.0, axes[0] / 3)))
    strength = float(rng.uniform(150, 230))
    lifted = photo.astype(np.float32) + (mask * strength)[:, :, None]
    photo[...] = np.clip(lifted, 0, 255).astype(np.uint8)


def _motion_blur(photo: Image, length: float, angle: float) -> Image:
    """A shaken phone: a line kernel ``length`` pixels long at ``angle`` degrees."""
    size = math.ceil(length) | 1
    kernel = np.zeros((size, size), np.float32)
    kernel[size // 2, :] = 1.0
    spin = cv2.getRotationMatrix2D((size / 2 - 0.5, size / 2 - 0.5), angle, 1.0)
    kernel = cast(npt.NDArray[np.float32], cv2.warpAffine(kernel, spin, (size, size)))
    kernel /= max(float(kernel.sum()), 1e-6)
    return cast(Image, cv2.filter2D(photo, -1, kernel))
