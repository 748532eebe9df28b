"""Decode, normalise and describe one image: the first step for arts and photos alike.

Arts and photos go through the same code so that what the index stores and what a
photo yields are comparable: grey levels, a capped long side, the same detector.
"""

from __future__ import annotations

import io
import math
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from typing import cast

import cv2
import numpy as np
import numpy.typing as npt
from PIL import Image, UnidentifiedImageError

from notraining_agent.processors.keypoints.options import FeatureKind

DEFAULT_PHOTO_MAX_SIDE = 1600
"""Photos are matched at this long side: an art a quarter of its enrolled size still
keeps enough pixels, and a 12 MP phone photo costs no more than a small one."""

DEFAULT_PHOTO_FEATURES = 8000
"""Descriptors taken from a photo, where several arts share the frame with clutter. At
SIFT_CONTRAST a 1600x1200 store photo has about 6,000 keypoints: this keeps them all.
With 4000 the strongest-first cut dropped the weak keypoints of soft, dark posters
(storm sky, dandelion seeds) in favour of the clutter's hard edges."""

SIZE_OCTAVES = 6
"""Keypoint sizes are grouped by powers of two (2, 4, ..., 32+ pixels) to spread an art's
budget; SIFT on a 1024-pixel art rarely finds keypoints beyond that."""

SIFT_CONTRAST = 0.01
"""SIFT's contrast threshold, a quarter of OpenCV's default: real photographs (soft focus,
sky, foliage) keep too few keypoints at the default, and a small art in a photo even
fewer; on the real-photo set this alone raised recall from 0.60 to 0.87."""

SPREAD_POOL = 10
"""Keypoints described per keypoint kept, for the spread over sizes to choose from; with
3 the detector's strongest-first cut left too few coarse keypoints (generated-scene
recall 0.935 instead of 1.000)."""

MAX_PIXELS = 100_000_000
"""Images above this many pixels are refused before decoding (a decompression bomb
would otherwise allocate gigabytes)."""

Gray = npt.NDArray[np.uint8]
Points = npt.NDArray[np.float32]
Descriptors = npt.NDArray[np.uint8]


class ImageDecodeError(ValueError):
    """Bytes that are not an image we can read; ``str()`` says why, for the manifest."""


@dataclass(frozen=True)
class Features:
    """Keypoint positions (N x 2, in the normalised image) and their descriptors (N x D)."""

    points: Points
    descriptors: Descriptors

    def __len__(self) -> int:
        return int(self.points.shape[0])


def decode_gray(data: bytes) -> Gray:
    """The image in ``data`` as 8-bit grey; transparency is flattened onto white."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(data)) as probe:
                width, height = probe.size
    except UnidentifiedImageError as exc:
        raise ImageDecodeError(
            "not an image in a known format (PNG, JPEG, WebP, TIFF, BMP, GIF); export it as one"
        ) from exc
    except Exception as exc:  # Pillow raises many types for junk; all mean "not an image"
        raise ImageDecodeError(f"not a readable image ({type(exc).__name__}: {exc})") from exc
    if width * height > MAX_PIXELS:
        raise ImageDecodeError(
            f"image is {width}x{height} pixels, over the {MAX_PIXELS} limit; export it smaller"
        )
    raw = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED)
    image = _pillow_decode(data) if raw is None else cast(npt.NDArray[np.generic], raw)
    return _to_gray(image)


def _pillow_decode(data: bytes) -> npt.NDArray[np.generic]:
    """Formats OpenCV lacks (GIF, some TIFFs) through Pillow, as RGBA or L."""
    try:
        with Image.open(io.BytesIO(data)) as img:
            img.seek(0)
            converted = img.convert("RGBA" if "A" in img.getbands() else "L")
            array = np.asarray(converted)
    except Exception as exc:  # same as above: any failure means an unreadable image
        raise ImageDecodeError(f"image could not be decoded ({type(exc).__name__})") from exc
    if array.ndim == 3:
        # Pillow gives RGBA; the rest of this module expects OpenCV's BGRA.
        array = array[:, :, [2, 1, 0, 3]]
    return cast(npt.NDArray[np.generic], array)


def _to_gray(image: npt.NDArray[np.generic]) -> Gray:
    if image.dtype == np.uint16:
        image = (image.astype(np.float32) / 257.0).astype(np.uint8)
    elif image.dtype != np.uint8:
        values = image.astype(np.float32)
        span = float(values.max() - values.min()) or 1.0
        image = ((values - values.min()) * (255.0 / span)).astype(np.uint8)
    if image.ndim == 2:
        return cast(Gray, image)
    channels = image.shape[2]
    if channels == 4:
        alpha = image[:, :, 3:4].astype(np.float32) / 255.0
        rgb = image[:, :, :3].astype(np.float32) * alpha + 255.0 * (1.0 - alpha)
        image = rgb.astype(np.uint8)
    elif channels == 1:
        return cast(Gray, image[:, :, 0])
    return cast(Gray, cv2.cvtColor(cast(Gray, image), cv2.COLOR_BGR2GRAY))


def normalise(gray: Gray, max_side: int) -> tuple[Gray, float]:
    """``gray`` with its long side at most ``max_side``, and the factor applied."""
    height, width = gray.shape[:2]
    scale = min(1.0, max_side / max(height, width))
    if scale >= 1.0:
        return gray, 1.0
    size = (max(1, round(width * scale)), max(1, round(height * scale)))
    return cast(Gray, cv2.resize(gray, size, interpolation=cv2.INTER_AREA)), scale


def detector(kind: FeatureKind, max_features: int) -> cv2.Feature2D:
    """The configured detector; ORB gets the pyramid depth a 4x scale change needs."""
    if kind == "sift":
        return cv2.SIFT.create(nfeatures=max_features, contrastThreshold=SIFT_CONTRAST)
    return cv2.ORB.create(nfeatures=max_features, scaleFactor=1.2, nlevels=10, edgeThreshold=15)


def extract(
    gray: Gray, kind: FeatureKind, max_features: int, *, spread_scales: bool = False
) -> Features:
    """Keypoints and descriptors of ``gray``; an empty set for a textureless image.

    ``spread_scales`` (for arts) shares the budget between keypoint sizes instead of
    keeping the strongest responses, which are mostly fine detail: fine detail is gone
    when the art is a quarter of its size in a photo, while coarse keypoints survive.
    """
    keypoints: Sequence[cv2.KeyPoint]
    if kind == "sift" and spread_scales:
        # One pass (pyramid, detection, descriptors) then a choice among the results:
        # detect() then compute() would build the scale space twice.
        # The detector keeps the POOL strongest before describing: describing all of a
        # busy poster's 20,000 keypoints would cost more than finding them.
        keypoints, descriptors = detector(kind, SPREAD_POOL * max_features).detectAndCompute(
            gray, None
        )
        if descriptors is None or not keypoints:
            return no_features(kind)
        chosen = _spread(keypoints, max_features)
        keypoints = [keypoints[i] for i in chosen]
        descriptors = descriptors[chosen]
    else:
        keypoints, descriptors = detector(kind, max_features).detectAndCompute(gray, None)
    if descriptors is None or not keypoints:
        return no_features(kind)
    points = np.array([kp.pt for kp in keypoints], dtype=np.float32).reshape(-1, 2)
    # SIFT descriptors are floats in 0..255 by construction: uint8 storage is lossless
    # enough and four times smaller in index.npz.
    packed = np.clip(np.rint(descriptors), 0, 255).astype(np.uint8)
    return Features(points, packed)


def no_features(kind: FeatureKind) -> Features:
    """An empty set with the kind's descriptor width (SIFT 128, ORB 32 bytes)."""
    width = 128 if kind == "sift" else 32
    return Features(np.zeros((0, 2), np.float32), np.zeros((0, width), np.uint8))


def _spread(keypoints: Sequence[cv2.KeyPoint], budget: int) -> list[int]:
    """Indexes of at most ``budget`` keypoints, shared evenly between size octaves,
    strongest first."""
    if len(keypoints) <= budget:
        return list(range(len(keypoints)))
    octaves: dict[int, list[int]] = {}
    for number, kp in enumerate(keypoints):
        octave = min(SIZE_OCTAVES - 1, int(math.log2(max(kp.size, 1.0))))
        octaves.setdefault(octave, []).append(number)
    for members in octaves.values():
        members.sort(key=lambda i: keypoints[i].response, reverse=True)
    chosen: list[int] = []
    pending = sorted(octaves.values(), key=len)
    while pending:
        # Smallest octaves first: what they cannot use goes to the larger ones.
        share = (budget - len(chosen)) // len(pending)
        members = pending.pop(0)
        chosen.extend(members[:share])
    return sorted(chosen)


def to_float(kind: FeatureKind, descriptors: Descriptors) -> npt.NDArray[np.float32]:
    """SIFT descriptors as RootSIFT (L1-normalised square roots): better L2 matching."""
    if kind != "sift":
        raise ValueError("only SIFT descriptors are compared as floats")
    values = descriptors.astype(np.float32)
    values /= values.sum(axis=1, keepdims=True) + 1e-7
    return cast(npt.NDArray[np.float32], np.sqrt(values))
