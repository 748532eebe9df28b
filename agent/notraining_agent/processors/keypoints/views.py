"""The matchability check: synthetic photos of each art, matched against the whole index.

Each art is shown once per condition a store photo inflicts (perspective, a quarter
of its size, rotation, blur, lighting, JPEG quality 60, partial occlusion) on a
cluttered shelf, at the size it has in a store photo and cropped to it: SIFT's cost
follows the pixels, and a full 640x480 frame per view cost six times the art's own
enrollment. The share of views where the art is found in the right place is its recall;
any other art found instead is a confusion. Both go to the manifest, so a user learns
before printing that an art will not be recognised.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import cast

import cv2
import numpy as np

from notraining_agent.processors.keypoints import synth
from notraining_agent.processors.keypoints.features import (
    DEFAULT_PHOTO_MAX_SIDE,
    Gray,
    extract,
)
from notraining_agent.processors.keypoints.matcher import Matcher
from notraining_agent.processors.keypoints.options import CONDITIONS

VIEW_LONG_SIDE = 300.0
"""The art's long side in a view, in pixels of a photo matched at 1600: a poster across
a fifth of a store photo's width, as on a shelf seen from a step back."""
SCALE_LONG_SIDE = 256.0
"""The 'scale' condition: a quarter of a 1024-pixel art, the smallest size recall holds."""
BLUR_SIGMA = 2.0 / 512
"""Defocus of the 'blur' view, relative to the art's long side (2 pixels at 512)."""
WARP_HEADROOM = 1.25
"""The art is shrunk to this times the view's long side before the perspective warp,
which stretches one side by up to a quarter."""
MARGIN = 0.05
MIN_MARGIN = 10.0
"""Shelf around the art in a view (fraction of its long side, at least this many pixels):
enough for keypoints on the art's edges and some clutter to confuse the match."""
MIN_VIEW_FEATURES = 400
"""Features of a view: the art at 300 pixels has about 650 keypoints at SIFT_CONTRAST;
the strongest 400 find it about as often as 800 did, and each one costs a search."""
VIEW_PHOTO_FEATURES = 4000
"""Features a full 1600x1200 view would get (real photos keep all their ~6,000 keypoints,
DEFAULT_PHOTO_FEATURES); pro rata, a view cropped to the art (about 0.1 MP) gets fewer
than MIN_VIEW_FEATURES, so in practice every view gets that floor."""
PLACEMENT_TOLERANCE = 0.1
"""A detection counts as right when its corners are, on average, within this fraction of
the art's long side from where the art was pasted."""


@dataclass(frozen=True)
class View:
    """One synthetic photo: the condition it shows, the grey image, the art's true corners."""

    condition: str
    image: Gray
    corners: synth.Quad


@dataclass(frozen=True)
class ArtCheck:
    """How one art fared: recall over its views and which other arts were found instead."""

    views: int
    found: int
    confusions: dict[str, int] = field(default_factory=dict)
    missed: tuple[str, ...] = ()

    @property
    def recall(self) -> float:
        """Share of views where the art was found in the right place."""
        return self.found / self.views if self.views else 0.0


def _settings(condition: str, rng: np.random.Generator) -> tuple[float, float, float]:
    """(long side in photo pixels, tilt, angle) for one condition."""
    sign = 1.0 if rng.random() < 0.5 else -1.0
    return {
        "perspective": (VIEW_LONG_SIDE, 0.14, float(rng.uniform(-10, 10))),
        "scale": (SCALE_LONG_SIDE, 0.03, float(rng.uniform(-5, 5))),
        "rotation": (VIEW_LONG_SIDE, 0.04, sign * float(rng.uniform(30, 90))),
        "blur": (VIEW_LONG_SIDE, 0.05, float(rng.uniform(-8, 8))),
        "lighting": (VIEW_LONG_SIDE, 0.05, float(rng.uniform(-8, 8))),
        "jpeg": (VIEW_LONG_SIDE, 0.05, float(rng.uniform(-8, 8))),
        "occlusion": (VIEW_LONG_SIDE, 0.05, float(rng.uniform(-8, 8))),
    }[condition]


def make_view(art: Gray, condition: str, seed: int) -> View:
    """One synthetic photo of ``art`` under ``condition``; deterministic for a seed.

    The view is the part of a store photo around the art: clutter far from the art
    would only pay for keypoints that match nothing."""
    rng = np.random.default_rng([seed, CONDITIONS.index(condition)])
    long_side, tilt, angle = _settings(condition, rng)
    height, width = art.shape[:2]
    probe = synth.quad(rng, (width, height), (0.0, 0.0), long_side, angle=angle, tilt=tilt)
    art = shrunk(art, long_side)
    span = probe.max(axis=0) - probe.min(axis=0)
    margin = max(MIN_MARGIN, MARGIN * long_side)
    canvas_w = int(np.ceil(span[0] + 2 * margin))
    canvas_h = int(np.ceil(span[1] + 2 * margin))
    offset = (
        np.array([canvas_w, canvas_h], np.float32) / 2 - (probe.max(axis=0) + probe.min(axis=0)) / 2
    )
    corners = (probe + offset).astype(np.float32)
    image = synth.clutter(rng, canvas_w, canvas_h, 1)
    synth.paste(image, art, corners)
    if condition == "occlusion":
        synth.occlude(image, rng, corners, 0.3)
    if condition == "lighting":
        dark = rng.random() < 0.5
        image = synth.shade(image, rng, 0.5 if dark else 1.25, 1.3 if dark else 0.75)
    if condition == "blur":
        image = synth.blur(image, BLUR_SIGMA * long_side)
    image = synth.noisy(image, rng, 3.0)
    if condition == "jpeg":
        encoded = synth.jpeg(image, 60)
        image = cast(Gray, cv2.imdecode(np.frombuffer(encoded, np.uint8), cv2.IMREAD_GRAYSCALE))
    return View(condition, image, corners)


def shrunk(art: Gray, long_side: float) -> Gray:
    """``art`` reduced by area to what a view at ``long_side`` needs: a camera integrates
    the art's pixels, where the warp alone would sample a 1024-pixel art with aliasing
    (and costs more on the full art)."""
    height, width = art.shape[:2]
    factor = WARP_HEADROOM * long_side / max(width, height)
    if factor >= 1.0:
        return art
    size = (max(1, round(width * factor)), max(1, round(height * factor)))
    return cast(Gray, cv2.resize(art, size, interpolation=cv2.INTER_AREA))


def view_art(art: Gray) -> Gray:
    """The copy of ``art`` every view is made from: extraction saves it, so the check
    needs no second decode of what may be a 50-megapixel file."""
    return shrunk(art, max(VIEW_LONG_SIDE, SCALE_LONG_SIDE))


def check_art(
    matcher: Matcher,
    art_index: int,
    art: Gray,
    seed: int,
    *,
    conditions: tuple[str, ...] = CONDITIONS,
    on_view: Callable[[], None] | None = None,
) -> ArtCheck:
    """Match every view of one art against the whole index and score the outcome."""
    kind = matcher.index.kind
    found = 0
    confusions: Counter[str] = Counter()
    missed: list[str] = []
    art = view_art(art)  # once, not once per view (a no-op on a view_art copy)
    for condition in conditions:
        view = make_view(art, condition, seed)
        detections = matcher.match(extract(view.image, kind, view_features(view.image)))
        right = False
        for det in detections:
            if det.art == art_index and _placed(det.corners, view.corners):
                right = True
            elif det.art != art_index:
                confusions[det.name] += 1
        found += int(right)
        if not right:
            missed.append(condition)
        if on_view is not None:
            on_view()
    return ArtCheck(len(conditions), found, dict(confusions), tuple(missed))


def view_features(image: Gray) -> int:
    """As many features per pixel as a full-size photo gets, so views are no easier (or
    slower) to match than a real photo of the same content."""
    height, width = image.shape[:2]
    photo_area = DEFAULT_PHOTO_MAX_SIDE * DEFAULT_PHOTO_MAX_SIDE * 3 / 4
    return max(MIN_VIEW_FEATURES, int(VIEW_PHOTO_FEATURES * width * height / photo_area))


def _placed(found: synth.Quad, truth: synth.Quad) -> bool:
    long_side = float(np.linalg.norm(truth.max(axis=0) - truth.min(axis=0)))
    error = float(np.linalg.norm(found - truth, axis=1).mean())
    return error <= PLACEMENT_TOLERANCE * long_side
