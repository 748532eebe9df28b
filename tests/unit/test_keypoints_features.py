"""Decoding, normalising and describing images for the keypoints processor."""

from __future__ import annotations

import io

import cv2
import numpy as np
import pytest
from notraining_agent.processors.keypoints import features
from notraining_agent.processors.keypoints.features import (
    ImageDecodeError,
    decode_gray,
    extract,
    normalise,
)
from notraining_testkit.emulators import artgen
from PIL import Image


def _encode(image: Image.Image, fmt: str) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=fmt)
    return buffer.getvalue()


def test_decodes_png_and_jpeg_to_grey() -> None:
    """PNG and JPEG arts become 2-D uint8 arrays of the image's size."""
    formats: tuple[artgen.ImageFormat, ...] = ("PNG", "JPEG")
    for fmt in formats:
        gray = decode_gray(artgen.generate_art(1, size=(320, 200), fmt=fmt))
        assert gray.shape == (200, 320)
        assert gray.dtype == np.uint8


def test_transparency_is_flattened_onto_white() -> None:
    """A fully transparent pixel reads as white, whatever colour it stores."""
    rgba = Image.new("RGBA", (4, 4), (0, 0, 0, 0))
    gray = decode_gray(_encode(rgba, "PNG"))
    assert int(gray.min()) == 255


def test_sixteen_bit_and_pillow_only_formats() -> None:
    """16-bit greys are scaled to 8 bits; a GIF (no OpenCV codec) decodes through Pillow."""
    deep = Image.fromarray(np.full((8, 8), 65535, dtype=np.uint16))
    assert int(decode_gray(_encode(deep, "PNG")).max()) == 255
    gif = Image.new("P", (10, 6), 3)
    assert decode_gray(_encode(gif, "GIF")).shape == (6, 10)


@pytest.mark.parametrize("data", [b"", b"not an image", b"%PDF-1.7\n..."])
def test_non_images_are_refused_with_a_reason(data: bytes) -> None:
    """Bytes that are no image raise ImageDecodeError naming the accepted formats."""
    with pytest.raises(ImageDecodeError, match="known format"):
        decode_gray(data)


def test_truncated_image_is_refused() -> None:
    """A PNG cut in half is refused, not half-decoded."""
    data = artgen.generate_art(2)
    with pytest.raises(ImageDecodeError):
        decode_gray(data[: len(data) // 2])


def test_oversized_images_are_refused_before_decoding(monkeypatch: pytest.MonkeyPatch) -> None:
    """An image over MAX_PIXELS is refused from its header, with its size in the message."""
    monkeypatch.setattr(features, "MAX_PIXELS", 100)
    with pytest.raises(ImageDecodeError, match="20x20 pixels"):
        decode_gray(_encode(Image.new("L", (20, 20)), "PNG"))


def test_normalise_caps_the_long_side() -> None:
    """A 2000x1000 image becomes 1024x512; a small one is left alone."""
    big = np.zeros((1000, 2000), np.uint8)
    small, scale = normalise(big, 1024)
    assert small.shape == (512, 1024)
    assert scale == pytest.approx(0.512)
    same, one = normalise(np.zeros((10, 20), np.uint8), 1024)
    assert same.shape == (10, 20)
    assert one == 1.0


def test_sift_and_orb_descriptors() -> None:
    """SIFT gives 128-byte, ORB 32-byte descriptors, at most the requested count."""
    gray = decode_gray(artgen.generate_art(3))
    sift = extract(gray, "sift", 300)
    orb = extract(gray, "orb", 300)
    assert 100 < len(sift) <= 302  # SIFT keeps ties at the cut
    assert sift.descriptors.shape == (len(sift), 128)
    assert 100 < len(orb) <= 300
    assert orb.descriptors.shape == (len(orb), 32)
    assert sift.points.dtype == np.float32


def test_flat_image_has_no_features() -> None:
    """A single-colour art yields an empty feature set of the right width, not an error."""
    gray = decode_gray(artgen.flat_art())
    found = extract(gray, "sift", 600)
    assert len(found) == 0
    assert found.descriptors.shape == (0, 128)


def test_rootsift_rows_have_unit_norm() -> None:
    """RootSIFT vectors have L2 norm 1, so similarity is a dot product."""
    found = extract(decode_gray(artgen.generate_art(4)), "sift", 100)
    norms = np.linalg.norm(features.to_float("sift", found.descriptors), axis=1)
    assert np.allclose(norms, 1.0, atol=1e-3)
    with pytest.raises(ValueError, match="SIFT"):
        features.to_float("orb", found.descriptors)


def test_spread_scales_keeps_coarse_keypoints() -> None:
    """The budget is shared between sizes: weak large keypoints beat many strong small ones."""
    small = [cv2.KeyPoint(float(i), 0.0, 3.0, response=1.0) for i in range(100)]
    large = [cv2.KeyPoint(float(i), 9.0, 40.0, response=0.01) for i in range(5)]
    both = [*small, *large]
    chosen = features._spread(both, 20)
    assert len(chosen) == 20
    assert sum(both[i].size == 40.0 for i in chosen) == 5
    assert features._spread(large, 20) == list(range(5))


def test_spread_scales_extracts_the_budget() -> None:
    """On a real poster, spread extraction returns exactly the budget of SIFT descriptors."""
    gray = decode_gray(artgen.generate_art(5, size=(1024, 768)))
    spread = extract(gray, "sift", 300, spread_scales=True)
    assert len(spread) == 300
    assert spread.descriptors.shape == (300, 128)


def test_spread_scales_on_a_flat_image() -> None:
    """No keypoints at all is still an empty set with spread_scales."""
    assert len(extract(decode_gray(artgen.flat_art()), "sift", 300, spread_scales=True)) == 0
