"""Shared pieces of synthetic imagery: cluttered backgrounds, warps, camera effects.

The matchability check (views.py) and the generated store photos (scenes.py) both
need "an art seen by a phone in a shop": one set of effects keeps them consistent.
"""

from __future__ import annotations

import math
from typing import cast

import cv2
import numpy as np
import numpy.typing as npt

Image = npt.NDArray[np.uint8]
Quad = npt.NDArray[np.float32]


def clutter(rng: np.random.Generator, width: int, height: int, channels: int) -> Image:
    """A shop-like background: shelves of boxes with labels, gradients and noise."""
    shape = (height, width, channels) if channels > 1 else (height, width)
    base = rng.integers(90, 200, size=channels).astype(np.float32)
    ramp = np.linspace(0.75, 1.15, height, dtype=np.float32)[:, None]
    image = np.clip(ramp[..., None] * base if channels > 1 else ramp * base[0], 0, 255)
    canvas = np.ascontiguousarray(np.broadcast_to(image, shape).astype(np.uint8))
    shelf = int(rng.integers(max(40, height // 6), max(41, height // 3)))
    for top in range(int(rng.integers(0, shelf)), height, shelf):
        cv2.rectangle(canvas, (0, top), (width, top + 6), _colour(rng, channels, 40, 90), -1)
        x = 0
        while x < width:
            box_w = int(rng.integers(18, max(19, width // 10)))
            box_h = int(rng.integers(shelf // 3, max(shelf // 3 + 1, shelf - 8)))
            colour = _colour(rng, channels, 30, 240)
            cv2.rectangle(canvas, (x, top + shelf - box_h), (x + box_w, top + shelf), colour, -1)
            if rng.random() < 0.5:
                cv2.putText(
                    canvas,
                    str(rng.integers(10, 99)),
                    (x + 2, top + shelf - box_h // 2),
                    cv2.FONT_HERSHEY_PLAIN,
                    0.9,
                    _colour(rng, channels, 0, 255),
                    1,
                    cv2.LINE_AA,
                )
            x += box_w + int(rng.integers(1, 6))
    return noisy(canvas, rng, 4.0)


def _colour(rng: np.random.Generator, channels: int, low: int, high: int) -> tuple[int, ...]:
    return tuple(int(v) for v in rng.integers(low, high, size=max(channels, 1)))


def quad(
    rng: np.random.Generator,
    size: tuple[int, int],
    centre: tuple[float, float],
    long_side: float,
    *,
    angle: float = 0.0,
    tilt: float = 0.05,
) -> Quad:
    """Where an art of ``size`` lands: scaled to ``long_side``, rotated, its corners jittered.

    ``tilt`` moves each corner by up to that fraction of the long side, which is how
    a perspective view of a flat poster looks; corners stay clockwise from top left.
    """
    width, height = size
    scale = long_side / max(width, height)
    half = np.array([width, height], np.float32) * scale / 2
    corners = np.array([[-1, -1], [1, -1], [1, 1], [-1, 1]], np.float32) * half
    corners += rng.uniform(-tilt, tilt, size=(4, 2)).astype(np.float32) * long_side
    theta = math.radians(angle)
    rotation = np.array(
        [[math.cos(theta), -math.sin(theta)], [math.sin(theta), math.cos(theta)]], np.float32
    )
    return cast(Quad, (corners @ rotation.T + np.array(centre, np.float32)).astype(np.float32))


def paste(canvas: Image, art: Image, corners: Quad, *, gain: float = 1.0) -> None:
    """Warp ``art`` onto ``canvas`` in place so that its corners land on ``corners``."""
    height, width = art.shape[:2]
    x0, y0 = np.floor(corners.min(axis=0)).astype(int)
    x1, y1 = np.ceil(corners.max(axis=0)).astype(int) + 1
    x0, y0 = max(0, int(x0)), max(0, int(y0))
    x1, y1 = min(canvas.shape[1], int(x1)), min(canvas.shape[0], int(y1))
    if x1 <= x0 or y1 <= y0:
        return
    # Warp into the art's bounding box only: the rest of the canvas is untouched.
    source = np.array([[0, 0], [width, 0], [width, height], [0, height]], np.float32)
    target = (corners - np.array([x0, y0], np.float32)).astype(np.float32)
    homography = cv2.getPerspectiveTransform(source, target)
    size = (x1 - x0, y1 - y0)
    warped = cv2.warpPerspective(art, homography, size, flags=cv2.INTER_AREA)
    mask = cv2.warpPerspective(np.full((height, width), 255, np.uint8), homography, size)
    region = canvas[y0:y1, x0:x1]
    alpha = mask.astype(np.float32) / 255.0
    if canvas.ndim == 3:
        alpha = alpha[:, :, None]
    blended = region * (1.0 - alpha) + warped * (alpha * gain)
    region[...] = np.clip(blended, 0, 255).astype(np.uint8)


def shade(image: Image, rng: np.random.Generator, gain: float, gamma: float) -> Image:
    """Lighting: global gain and gamma with a soft shadow gradient across the frame."""
    height, width = image.shape[:2]
    dx, dy = rng.uniform(-1, 1, size=2)
    across = (np.linspace(-0.5, 0.5, width, dtype=np.float32) * dx)[None, :]
    down = (np.linspace(-0.5, 0.5, height, dtype=np.float32) * dy)[:, None]
    factor = gain * (1.0 + 0.35 * (across + down))
    if image.ndim == 3:
        factor = factor[:, :, None]
    curve = ((np.arange(256, dtype=np.float32) / 255.0) ** gamma * 255.0).astype(np.uint8)
    curved = cv2.LUT(image, curve)
    return cast(Image, np.clip(curved * factor, 0, 255).astype(np.uint8))


def noisy(image: Image, rng: np.random.Generator, sigma: float) -> Image:
    """Sensor noise: Gaussian, ``sigma`` grey levels."""
    noise = rng.standard_normal(size=image.shape, dtype=np.float32) * sigma
    return cast(Image, np.clip(image + noise, 0, 255).astype(np.uint8))


def blur(image: Image, sigma: float) -> Image:
    """Defocus or motion-free camera blur."""
    return cast(Image, cv2.GaussianBlur(image, (0, 0), sigma))


def jpeg(image: Image, quality: int) -> bytes:
    """The image as a JPEG of the given quality, like a phone would upload it."""
    ok, buffer = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, quality])
    if not ok:
        raise ValueError("JPEG encoding failed")
    return bytes(buffer.tobytes())


def occlude(image: Image, rng: np.random.Generator, corners: Quad, fraction: float) -> None:
    """Cover ``fraction`` of the art's box from one side with a flat object (a tag, a hand)."""
    x0, y0 = corners.min(axis=0)
    x1, y1 = corners.max(axis=0)
    width, height = x1 - x0, y1 - y0
    side = int(rng.integers(0, 4))
    if side in (0, 1):
        span = width * fraction
        xa = x0 if side == 0 else x1 - span
        box = (int(xa), int(y0), int(xa + span), int(y1))
    else:
        span = height * fraction
        ya = y0 if side == 2 else y1 - span
        box = (int(x0), int(ya), int(x1), int(ya + span))
    colour = tuple(
        int(v) for v in rng.integers(20, 235, size=image.shape[2] if image.ndim == 3 else 1)
    )
    cv2.rectangle(image, box[:2], box[2:], colour, -1)
