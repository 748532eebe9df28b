"""A 64-bit perceptual hash (DCT pHash), to find near-duplicate arts inside a package.

Two arts whose hashes differ in few bits look alike at a glance; keypoint matching
may then confuse them in the field, so the manifest names such pairs.
"""

from __future__ import annotations

import cv2
import numpy as np

from notraining_agent.processors.keypoints.features import Gray

NEAR_DUPLICATE_BITS = 8
"""Hashes this close (of 64 bits) are reported as near-duplicates. Unrelated images differ
in about 32 bits (among 1000 generated posters the closest pair was 10 apart); a
re-encoded, resized or slightly edited copy in under 6."""


def phash(gray: Gray) -> int:
    """The image's 64-bit pHash: signs of the 8x8 lowest DCT frequencies against their median."""
    small = cv2.resize(gray, (32, 32), interpolation=cv2.INTER_AREA).astype(np.float32)
    low = cv2.dct(small)[:8, :8].flatten()
    # The DC term only says how bright the image is; leave it out of the median.
    median = float(np.median(low[1:]))
    bits = 0
    for value in low:
        bits = (bits << 1) | int(value > median)
    return bits


def distance(a: int, b: int) -> int:
    """Hamming distance between two hashes, 0..64."""
    return (a ^ b).bit_count()


def to_hex(value: int) -> str:
    """The hash as 16 hex digits, how the manifest writes it."""
    return f"{value:016x}"


def near_duplicates(
    hashes: list[int], limit: int = NEAR_DUPLICATE_BITS
) -> list[tuple[int, int, int]]:
    """Pairs ``(i, j, distance)`` with ``i < j`` whose hashes differ in at most ``limit`` bits."""
    if len(hashes) < 2:
        return []
    values = np.array(hashes, dtype=np.uint64)
    pairs: list[tuple[int, int, int]] = []
    for i in range(len(hashes) - 1):
        xor = np.bitwise_xor(values[i + 1 :], values[i])
        counts = np.bitwise_count(xor)
        for offset in np.nonzero(counts <= limit)[0]:
            j = i + 1 + int(offset)
            pairs.append((i, j, int(counts[offset])))
    return pairs
