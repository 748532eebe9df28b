"""Is a shortlisted art in the photo, and where: the verification after the vote.

The vote (``matcher.py``) only shortlists arts. Here the photo's descriptors are paired
with one art's own (Lowe's ratio test), a first homography from a few agreeing matches
seeds guided matching, and the final fit must have enough inliers on a plausible
quadrilateral spread over a good part of the art. Each copy found takes its matches away
and the search runs again, so two copies of one poster give two detections and one copy
never gives two.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, cast

import cv2
import numpy as np
import numpy.typing as npt

from notraining_agent.processors.keypoints import ransac
from notraining_agent.processors.keypoints.features import Features
from notraining_agent.processors.keypoints.pairs import RatioPairs, guided, inside_art

if TYPE_CHECKING:
    from notraining_agent.processors.keypoints.matcher import MatchParams

FloatArray = npt.NDArray[np.float32]
AnyArray = npt.NDArray[Any]
Homography = npt.NDArray[np.float64]


@dataclass(frozen=True)
class Detection:
    """An art found in the image: how well it matched and where its corners are."""

    art: int
    name: str
    inliers: int
    confidence: float
    corners: FloatArray

    def scaled(self, factor: float) -> Detection:
        """The same detection with corners divided by ``factor`` (back to the original photo)."""
        corners = (self.corners / factor).astype(np.float32)
        return Detection(self.art, self.name, self.inliers, self.confidence, corners)


def confidence(inliers: int, min_inliers: int) -> float:
    """A 0..1 score from the inlier count: 0.5 at the acceptance threshold, 0.95 at twice it.

    Logistic in the inlier count, because random matches almost never agree on one
    homography beyond a dozen points while a real art yields dozens to hundreds.
    """
    spread = max(1.0, min_inliers / math.log(19.0))
    return 1.0 / (1.0 + math.exp(-(inliers - min_inliers) / spread))


@dataclass(frozen=True)
class ArtView:
    """One enrolled art as verification needs it."""

    number: int
    name: str
    points: FloatArray
    descriptors: AnyArray
    """As compared: full RootSIFT floats, or ORB bytes."""
    size: tuple[float, float]
    """Width and height, in the art's enrolled pixels."""
    corners: FloatArray
    """The art's own outline, which a homography maps into the photo."""


class Verifier:
    """Finds every copy of one art among a photo's descriptors."""

    def __init__(self, params: MatchParams, pairs_of: RatioPairs) -> None:
        self.params = params
        self._pairs_of = pairs_of

    def copies(
        self, art: ArtView, photo: Features, query: AnyArray, rows: npt.NDArray[np.intp]
    ) -> list[Detection]:
        """Ratio-tested matches of ``query[rows]`` against ``art`` alone, then one
        homography per copy.

        Each copy found takes its matches away (every match landing inside its outline),
        and the search runs again on what is left.
        """
        pairs = self._pairs_of(query[rows], art.descriptors, self.params.verify_ratio)
        src = art.points[pairs[:, 1]]
        dst = photo.points[rows[pairs[:, 0]]]
        found: list[Detection] = []
        rejected = 0
        while len(found) < self.params.max_copies and rejected <= self.params.max_rejected:
            seed = self._fit(src, dst, self.params.min_seed, outline=art.corners)
            if seed is None:
                break
            seed_homography, seed_agreed = seed
            located = self._locate(
                art, src[seed_agreed], dst[seed_agreed], seed_homography, photo=photo, query=query
            )
            if located is None:
                # A wrong first fit (repeated texture, a mix of two copies) can hide a
                # right one: drop its matches and look again, a bounded number of times.
                rejected += 1
                keep = ~seed_agreed
            else:
                detection, homography = located
                found.append(detection)
                # Every match on this copy goes, not only its inliers: the rest are its
                # repeated textures, which would otherwise seed a ghost copy beside it.
                keep = ~inside_art(homography, dst, art.size)
            src, dst = src[keep], dst[keep]
        return found

    def _locate(
        self,
        art: ArtView,
        first_src: FloatArray,
        first_dst: FloatArray,
        seed: Homography,
        *,
        photo: Features,
        query: AnyArray,
    ) -> tuple[Detection, Homography] | None:
        """The art's place in the image, from a first homography ``seed`` that the matches
        ``first_src`` -> ``first_dst`` agree on, and the homography finally fitted.

        Guided matching looks again where the seed puts the art; the final fit needs
        ``min_inliers`` agreeing matches on a plausible quadrilateral."""
        homography, agreed = seed, np.ones(len(first_src), dtype=bool)
        src = first_src
        for _ in range(self.params.guided_rounds):
            # Each round looks again with the last homography: a first fit from a few
            # matches along one line (a horizon, a cable) is loose across it, and the
            # matches the next round adds off that line pin it down.
            more_src, more_dst = guided(
                homography,
                art.points,
                art.descriptors,
                photo.points,
                query,
                size=art.size,
                ratio=self.params.guided_ratio,
                radius=self.params.ransac_px,
                pairs_of=self._pairs_of,
            )
            src = np.concatenate([first_src, more_src])
            dst = np.concatenate([first_dst, more_dst])
            # A photo keypoint paired twice (by the first pass and again) counts once.
            _, unique = np.unique(dst, axis=0, return_index=True)
            src, dst = src[unique], dst[unique]
            fitted = self._fit(src, dst, self.params.min_inliers)
            if fitted is None:
                return None
            homography, agreed = fitted
        count = int(agreed.sum())
        if count < self.params.min_inliers:
            return None
        corners = cv2.perspectiveTransform(art.corners.reshape(-1, 1, 2), homography)
        corners = cast(FloatArray, corners.reshape(4, 2).astype(np.float32))
        # Agreeing points bunched in one corner of the art are a shared logo or word,
        # not the art: real sightings spread over a good part of it, even when occluded.
        hull_area = float(cv2.contourArea(cv2.convexHull(src[agreed])))
        art_area = float(cv2.contourArea(art.corners))
        if hull_area < self.params.min_coverage * art_area or not _plausible(corners, art.corners):
            return None
        score = confidence(count, self.params.min_inliers)
        return Detection(art.number, art.name, count, score, corners), homography

    def _fit(
        self, src: FloatArray, dst: FloatArray, needed: int, *, outline: FloatArray | None = None
    ) -> tuple[Homography, npt.NDArray[np.bool_]] | None:
        """A MAGSAC homography from ``src`` to ``dst`` that at least ``needed`` matches agree
        on, and which of them do.

        With ``outline`` (seeds), a missing or implausible MAGSAC fit falls back to
        ``ransac.fit``, which only lets plausible placements compete: on the storm sky a
        folded fit of 13 chance matches outscored the right one of 12 and hid it."""
        if len(src) < needed:
            return None
        homography, mask = cv2.findHomography(
            src.reshape(-1, 1, 2),
            dst.reshape(-1, 1, 2),
            cv2.USAC_MAGSAC,
            self.params.ransac_px,
            maxIters=2000,
            confidence=0.999,
        )
        if outline is not None and (
            homography is None or not _placed_well(cast(Homography, homography), outline)
        ):
            return ransac.fit(src, dst, outline, needed=needed, radius=self.params.ransac_px)
        if homography is None or mask is None or int(mask.sum()) < needed:
            return None
        return cast(Homography, homography), mask.ravel().astype(bool)


def _placed_well(homography: Homography, outline: FloatArray) -> bool:
    """Whether ``homography`` puts the art's ``outline`` on a plausible quadrilateral."""
    corners = cv2.perspectiveTransform(outline.reshape(-1, 1, 2), homography).reshape(4, 2)
    return _plausible(corners.astype(np.float32), outline)


def _plausible(corners: FloatArray, original: FloatArray) -> bool:
    """A printed art seen by a camera: a convex, unflipped, not degenerate quadrilateral
    (the same test :func:`ransac.plausible` applies to every sampled model)."""
    outline = np.asarray(original, dtype=np.float64)
    sides = np.linalg.norm(np.roll(outline, -1, axis=0) - outline, axis=1)
    placed = np.asarray(corners, dtype=np.float64)[None]
    return bool(ransac.plausible(placed, sides)[0])
