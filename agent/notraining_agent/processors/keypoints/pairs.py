"""Descriptor pairs for verification: Lowe's ratio test within one art, and guided matching.

The vote only shortlists arts; these functions pair a photo's descriptors with one art's
own, exactly. Guided matching then uses a first homography to look again, with a looser
ratio, only where the art is: on soft, low-texture photographs a real sighting often has
eight to eleven matches at the strict ratio and twice that once the geometry is known.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import cv2
import numpy as np
import numpy.typing as npt

AnyArray = npt.NDArray[Any]
FloatArray = npt.NDArray[np.float32]
Pairs = npt.NDArray[np.int64]
RatioPairs = Callable[[AnyArray, AnyArray, float], Pairs]


def ratio_pairs_l2(query: AnyArray, art: AnyArray, ratio: float) -> Pairs:
    """``(query row, art row)`` pairs passing Lowe's ratio test; RootSIFT rows have unit norm,
    so squared distances are ``2 - 2 * similarity`` and one matrix product finds them all."""
    if len(art) < 2 or len(query) == 0:
        return np.zeros((0, 2), np.int64)
    similarity = np.asarray(query, np.float32) @ np.asarray(art, np.float32).T
    rows = np.arange(len(query))
    best = similarity.argmax(axis=1)
    first = similarity[rows, best]
    similarity[rows, best] = -np.inf
    second = similarity.max(axis=1)
    keep = (2.0 - 2.0 * first) < (ratio**2) * (2.0 - 2.0 * second)
    return np.stack([rows[keep], best[keep]], axis=1).astype(np.int64)


def ratio_pairs_hamming(query: AnyArray, art: AnyArray, ratio: float) -> Pairs:
    """The same for binary descriptors: Hamming distances by XOR and popcount, in blocks."""
    if len(art) < 2 or len(query) == 0:
        return np.zeros((0, 2), np.int64)
    words_q = np.ascontiguousarray(query, dtype=np.uint8).view(np.uint64)
    words_a = np.ascontiguousarray(art, dtype=np.uint8).view(np.uint64)
    distance = np.empty((len(words_q), len(words_a)), dtype=np.int32)
    block = max(1, 2_000_000 // max(1, words_a.size))
    for start in range(0, len(words_q), block):
        xor = np.bitwise_xor(words_q[start : start + block, None, :], words_a[None, :, :])
        distance[start : start + block] = np.bitwise_count(xor).sum(axis=2)
    rows = np.arange(len(query))
    best = distance.argmin(axis=1)
    first = distance[rows, best].astype(np.float32)
    distance[rows, best] = np.iinfo(np.int32).max
    second = distance.min(axis=1).astype(np.float32)
    keep = first < ratio * second
    return np.stack([rows[keep], best[keep]], axis=1).astype(np.int64)


def inside_art(
    homography: npt.NDArray[np.float64], points: FloatArray, size: tuple[float, float]
) -> npt.NDArray[np.bool_]:
    """Which photo ``points`` fall on the art (``size`` = width, height) placed by
    ``homography``: mapped back into the art's frame, in one vectorised step."""
    if len(points) == 0:
        return np.zeros(0, dtype=bool)
    try:
        inverse = np.linalg.inv(homography)
    except np.linalg.LinAlgError:
        return np.zeros(len(points), dtype=bool)
    back = cv2.perspectiveTransform(points.reshape(-1, 1, 2).astype(np.float64), inverse)
    back = back.reshape(-1, 2)
    width, height = size
    return (back[:, 0] >= 0) & (back[:, 0] <= width) & (back[:, 1] >= 0) & (back[:, 1] <= height)


def guided(
    homography: npt.NDArray[np.float64],
    art_points: FloatArray,
    art_descriptors: AnyArray,
    photo_points: FloatArray,
    photo_query: AnyArray,
    *,
    size: tuple[float, float],
    ratio: float,
    radius: float,
    pairs_of: RatioPairs,
) -> tuple[FloatArray, FloatArray]:
    """Matches ``(art points, photo points)`` found again under ``homography``: every photo
    keypoint on the art, paired at the looser ``ratio``, kept when its art keypoint lands
    within ``radius`` pixels of it. A chance pair lands there about once in a thousand,
    so a wrong first homography gains almost nothing while a right one gains many."""
    on_art = np.nonzero(inside_art(homography, photo_points, size))[0]
    pairs = pairs_of(photo_query[on_art], art_descriptors, ratio)
    src = art_points[pairs[:, 1]]
    dst = photo_points[on_art[pairs[:, 0]]]
    if len(src) == 0:
        return src, dst
    projected = cv2.perspectiveTransform(src.reshape(-1, 1, 2).astype(np.float64), homography)
    close = np.linalg.norm(projected.reshape(-1, 2) - dst, axis=1) <= radius
    return src[close], dst[close]
