"""A homography fit that only ever considers placements a camera could produce.

MAGSAC keeps the model most matches agree on. On soft, dark arts (a storm sky, a night
sea) the ratio-tested pairs are 85 % chance matches, and chance often lines up a dozen of
them on a collapsed or folded quadrilateral: that wrong fit outscores the right one (12
agreeing matches of 83 on the storm sky), is then refused as implausible, and the right
one is never tried. Here every sampled model is checked first (convex, unflipped, not too
small or stretched) and only plausible ones compete on their inlier count. Samples are
half uniform, half local (the other three matches among the first's photo neighbours),
because a real copy's matches sit together in the photo while chance ones are scattered.
"""

from __future__ import annotations

from typing import cast

import cv2
import numpy as np
import numpy.typing as npt

FloatArray = npt.NDArray[np.float32]
Homography = npt.NDArray[np.float64]
Mask = npt.NDArray[np.bool_]

SAMPLES = 3000
"""Four-match samples drawn per fit (half uniform, half local)."""
NEIGHBOURS = 16
"""Photo neighbours the local samples draw their other three matches from."""
MIN_AREA_PX = 24 * 24
"""Smaller than this in the image and an art is not really readable: a spurious fit."""
MAX_STRETCH = 5.0
"""One side of the art scaled five times more than another is beyond any real perspective."""
DEGENERATE = 1e-9
"""Below this (in coordinates scaled to unit spread) a sample's points are on one line."""


def plausible(corners: npt.NDArray[np.float64], sides: npt.NDArray[np.float64]) -> Mask:
    """Which placed outlines (M x 4 x 2) are convex, unflipped, large enough and not
    stretched beyond any real perspective; ``sides`` are the art's own side lengths."""
    edges = np.roll(corners, -1, axis=1) - corners
    following = np.roll(edges, -1, axis=1)
    turns = edges[..., 0] * following[..., 1] - edges[..., 1] * following[..., 0]
    x, y = corners[..., 0], corners[..., 1]
    area = 0.5 * np.abs((x * np.roll(y, -1, axis=1) - np.roll(x, -1, axis=1) * y).sum(axis=1))
    stretch = np.linalg.norm(edges, axis=2) / np.maximum(sides, 1e-6)
    ratio = stretch.max(axis=1) / np.maximum(stretch.min(axis=1), 1e-9)
    return cast(Mask, (turns > 0).all(axis=1) & (area >= MIN_AREA_PX) & (ratio < MAX_STRETCH))


def fit(
    src: FloatArray, dst: FloatArray, outline: FloatArray, *, needed: int, radius: float
) -> tuple[Homography, Mask] | None:
    """The plausible homography (``outline`` = the art's corners) that most of ``src`` ->
    ``dst`` agree on within ``radius`` pixels, refined on its inliers, and which agree;
    None when no plausible model gets ``needed``. Deterministic for given inputs."""
    n = len(src)
    if n < max(4, needed):
        return None
    rng = np.random.default_rng(n)
    samples = _samples(rng, dst, SAMPLES)
    models = _homographies(src.astype(np.float64), dst.astype(np.float64), samples)
    outline64 = outline.astype(np.float64)
    sides = np.linalg.norm(np.roll(outline64, -1, axis=0) - outline64, axis=1)
    placed, front = _apply(models, outline64)
    models = models[front & plausible(placed, sides)]
    if len(models) == 0:
        return None
    counts = _agree(models, src, dst, radius).sum(axis=1)
    best = models[int(counts.argmax())]
    for _ in range(2):
        # Least squares on the inliers, kept only if still plausible and as well supported.
        agreed = _agree(best[None], src, dst, radius)[0]
        refined, _ = cv2.findHomography(src[agreed], dst[agreed], 0)
        if refined is None:
            break
        placed, front = _apply(refined[None], outline64)
        again = _agree(refined[None], src, dst, radius)[0]
        if not (front & plausible(placed, sides))[0] or again.sum() < agreed.sum():
            break
        best = refined
    agreed = _agree(best[None], src, dst, radius)[0]
    if int(agreed.sum()) < needed:
        return None
    return cast(Homography, best), agreed


def _samples(rng: np.random.Generator, dst: FloatArray, count: int) -> npt.NDArray[np.intp]:
    """``count`` four-match samples: half uniform, half a match and three photo neighbours
    (a repeated index makes a degenerate sample, which the solver drops)."""
    n = len(dst)
    uniform = rng.integers(0, n, (count // 2, 4))
    k = min(n - 1, NEIGHBOURS)
    distance = np.linalg.norm(dst[:, None, :] - dst[None, :, :], axis=2)
    near = distance.argsort(axis=1)[:, 1 : k + 1]
    first = rng.integers(0, n, count - count // 2)
    pick = rng.random((len(first), k)).argsort(axis=1)[:, :3]
    local = np.concatenate([first[:, None], near[first[:, None], pick]], axis=1)
    return cast(npt.NDArray[np.intp], np.concatenate([uniform, local]))


def _homographies(
    src: npt.NDArray[np.float64], dst: npt.NDArray[np.float64], samples: npt.NDArray[np.intp]
) -> npt.NDArray[np.float64]:
    """The exact homography of each four-match sample (h33 = 1 on coordinates centred and
    scaled for conditioning, as DLT would give); degenerate samples are dropped.

    In closed form: the map of the unit square onto the sample's photo points after the
    inverse of its map onto the art points. Solving the 8x8 DLT system of each of
    3,000 samples cost two to five times as much for the same models."""
    s_mean, s_scale = src.mean(axis=0), max(float(src.std()), 1e-6)
    d_mean, d_scale = dst.mean(axis=0), max(float(dst.std()), 1e-6)
    from_square, src_ok = _square_to((src[samples] - s_mean) / s_scale)
    onto, dst_ok = _square_to((dst[samples] - d_mean) / d_scale)
    models = onto @ _adjugate(from_square)
    h33 = models[:, 2, 2]
    usable = src_ok & dst_ok
    usable &= np.abs(_determinant(from_square)) > DEGENERATE
    usable &= np.abs(_determinant(onto)) > DEGENERATE
    usable &= np.abs(h33) > DEGENERATE
    models = models[usable] / h33[usable, None, None]
    to_src = np.array([[1, 0, -s_mean[0]], [0, 1, -s_mean[1]], [0, 0, s_scale]]) / s_scale
    from_dst = np.array([[d_scale, 0, d_mean[0]], [0, d_scale, d_mean[1]], [0, 0, 1]])
    return from_dst @ models @ to_src


def _square_to(
    quads: npt.NDArray[np.float64],
) -> tuple[npt.NDArray[np.float64], Mask]:
    """For each four points (M x 4 x 2), the projective map (M x 3 x 3) of the unit square's
    corners (0,0), (1,0), (1,1), (0,1) onto them (Heckbert's closed form), and whether it
    exists (the last three points not on one line)."""
    x0, x1, x2, x3 = (quads[:, i, 0] for i in range(4))
    y0, y1, y2, y3 = (quads[:, i, 1] for i in range(4))
    dx1, dx2, dx3 = x1 - x2, x3 - x2, x0 - x1 + x2 - x3
    dy1, dy2, dy3 = y1 - y2, y3 - y2, y0 - y1 + y2 - y3
    den = dx1 * dy2 - dx2 * dy1
    ok = np.abs(den) > DEGENERATE
    den = np.where(ok, den, 1.0)
    g = (dx3 * dy2 - dx2 * dy3) / den
    h = (dx1 * dy3 - dx3 * dy1) / den
    maps = np.empty((len(quads), 3, 3))
    maps[:, 0, 0], maps[:, 0, 1], maps[:, 0, 2] = x1 - x0 + g * x1, x3 - x0 + h * x3, x0
    maps[:, 1, 0], maps[:, 1, 1], maps[:, 1, 2] = y1 - y0 + g * y1, y3 - y0 + h * y3, y0
    maps[:, 2, 0], maps[:, 2, 1], maps[:, 2, 2] = g, h, 1.0
    return maps, ok


def _adjugate(maps: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
    """Each 3x3 map's adjugate: its inverse up to scale, which a homography ignores."""
    a, b, c = maps[:, 0, 0], maps[:, 0, 1], maps[:, 0, 2]
    d, e, f = maps[:, 1, 0], maps[:, 1, 1], maps[:, 1, 2]
    g, h, i = maps[:, 2, 0], maps[:, 2, 1], maps[:, 2, 2]
    adj = np.empty_like(maps)
    adj[:, 0, 0], adj[:, 0, 1], adj[:, 0, 2] = e * i - f * h, c * h - b * i, b * f - c * e
    adj[:, 1, 0], adj[:, 1, 1], adj[:, 1, 2] = f * g - d * i, a * i - c * g, c * d - a * f
    adj[:, 2, 0], adj[:, 2, 1], adj[:, 2, 2] = d * h - e * g, b * g - a * h, a * e - b * d
    return adj


def _determinant(maps: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
    """Each 3x3 map's determinant: near 0 when three of its four points are on one line."""
    a, b, c = maps[:, 0, 0], maps[:, 0, 1], maps[:, 0, 2]
    d, e, f = maps[:, 1, 0], maps[:, 1, 1], maps[:, 1, 2]
    g, h, i = maps[:, 2, 0], maps[:, 2, 1], maps[:, 2, 2]
    return a * (e * i - f * h) - b * (d * i - f * g) + c * (d * h - e * g)


def _apply(
    models: npt.NDArray[np.float64], points: npt.NDArray[np.float64]
) -> tuple[npt.NDArray[np.float64], Mask]:
    """``points`` mapped by every model (M x P x 2), and whether all stay in front (w > 0)."""
    mapped = models @ np.concatenate([points, np.ones((len(points), 1))], axis=1).T
    w = mapped[:, 2, :]
    front = (w > 1e-9).all(axis=1)
    safe = np.where(np.abs(w) > 1e-9, w, 1e-9)
    return np.stack([mapped[:, 0] / safe, mapped[:, 1] / safe], axis=2), front


def _agree(
    models: npt.NDArray[np.float64], src: FloatArray, dst: FloatArray, radius: float
) -> Mask:
    """For each model, which matches land within ``radius`` pixels (M x N)."""
    mapped, _ = _apply(models, src.astype(np.float64))
    error = np.linalg.norm(mapped - dst[None].astype(np.float64), axis=2)
    return cast(Mask, error <= radius)
