"""The 64-bit perceptual hash and near-duplicate detection."""

from __future__ import annotations

import cv2
import numpy as np
from notraining_agent.processors.keypoints.features import decode_gray
from notraining_agent.processors.keypoints.phash import distance, near_duplicates, phash, to_hex
from notraining_testkit.emulators import artgen


def test_hash_is_64_bits_and_stable() -> None:
    """The same image always hashes the same, within 64 bits, written as 16 hex digits."""
    gray = decode_gray(artgen.generate_art(1))
    value = phash(gray)
    assert value == phash(gray.copy())
    assert 0 <= value < 2**64
    assert len(to_hex(value)) == 16


def test_reencoded_and_resized_copies_stay_close() -> None:
    """A JPEG q60 copy at half size is within a few bits of the original."""
    gray = decode_gray(artgen.generate_art(2))
    small = cv2.resize(gray, (gray.shape[1] // 2, gray.shape[0] // 2))
    _, jpeg = cv2.imencode(".jpg", small, [cv2.IMWRITE_JPEG_QUALITY, 60])
    copy = cv2.imdecode(jpeg, cv2.IMREAD_GRAYSCALE)
    assert copy is not None
    assert distance(phash(gray), phash(copy.astype(np.uint8))) <= 6


def test_different_arts_are_far_apart() -> None:
    """Unrelated posters differ in many bits."""
    hashes = [phash(decode_gray(artgen.generate_art(seed))) for seed in range(8)]
    closest = min(distance(a, b) for i, a in enumerate(hashes) for b in hashes[i + 1 :])
    assert closest > 12


def test_near_duplicates_lists_close_pairs_once() -> None:
    """Pairs within the limit come out once, as (i, j, distance) with i < j."""
    assert near_duplicates([0b1111, 0b1110, 2**64 - 1, 0b1111]) == [(0, 1, 1), (0, 3, 0), (1, 3, 1)]
    assert near_duplicates([1]) == []
    assert near_duplicates([0, 2**64 - 1], limit=10) == []


def test_flat_images_hash_alike() -> None:
    """Two flat arts of different colours look the same to the hash (both textureless)."""
    red = phash(decode_gray(artgen.flat_art((237, 28, 36))))
    blue = phash(decode_gray(artgen.flat_art((0, 114, 188))))
    assert distance(red, blue) <= 10
    # Only the brightness (DC) bit can tell two flat images apart.
    assert distance(phash(np.zeros((5, 5), np.uint8)), phash(np.full((5, 5), 200, np.uint8))) <= 1
