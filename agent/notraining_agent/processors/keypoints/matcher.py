"""Which enrolled arts appear in an image: vote over the whole index, verify the best few.

Matching every art one by one costs O(arts); instead each photo descriptor looks up
its nearest neighbours in one FLANN index over all arts and votes for the art it
lands on (ratio test against the nearest *other* art). Only the top-voted arts are
then verified the classic way: ratio-tested matches against that art alone and a
RANSAC homography. So the cost per photo grows with log(descriptors) for the vote and
stays constant for verification, which keeps 1000-art packages usable.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import cv2
import numpy as np
import numpy.typing as npt

from notraining_agent.processors.keypoints.features import (
    DEFAULT_PHOTO_FEATURES,
    DEFAULT_PHOTO_MAX_SIDE,
    Features,
    Gray,
    extract,
    normalise,
    to_float,
)
from notraining_agent.processors.keypoints.index import Index
from notraining_agent.processors.keypoints.pairs import ratio_pairs_hamming, ratio_pairs_l2
from notraining_agent.processors.keypoints.phash import near_duplicates
from notraining_agent.processors.keypoints.verify import ArtView, Detection, Verifier

FloatArray = npt.NDArray[np.float32]
AnyArray = npt.NDArray[Any]
"""Descriptors as matched: RootSIFT floats or ORB bytes."""
FlannParams = dict[str, bool | int | float | str]

_FLANN_KDTREE = 1
_FLANN_LSH = 6
VOTE_DIMS = 64
"""Dimensions of the vote's search space (RootSIFT has 128)."""
KD_TREES = 1
"""Randomised KD-trees of the vote: build time and memory grow with each."""
PCA_SAMPLE = 50_000
"""Descriptors the principal axes are estimated from (evenly spaced over the index)."""
PROJECT_CHUNK = 65_536
"""Rows projected at a time, so no full-size float copy of the index is ever made."""


@dataclass(frozen=True)
class MatchParams:
    """Thresholds of the vote and the verification, tuned on generated store scenes."""

    neighbours: int = 4
    """Neighbours looked up per photo descriptor: enough to find the nearest other art."""
    vote_ratio: float = 0.8
    """Lowe's ratio against the nearest other art for a descriptor to vote."""
    candidates: int = 16
    """Top-voted arts verified per photo; a photo rarely shows more than a handful, but
    busy arts (a bridge, foliage) collect chance votes: with 12 a bird on a plain sky
    (TwoWings, 22 inliers once verified) ranked below the cut."""
    min_votes: int = 4
    """Fewer votes than this and an art is not worth a verification."""
    verify_ratio: float = 0.8
    """Lowe's ratio within one art's own descriptors, for the matches RANSAC gets."""
    ransac_px: float = 5.0
    """Reprojection error allowed, in pixels of the photo at its matching size."""
    min_inliers: int = 12
    """Matches that must agree on the homography; false fits seen in tests stop at 11."""
    min_seed: int = 8
    """Matches agreeing on a first homography for guided matching to look again: soft
    photographs often give a real sighting only eight to eleven strict matches."""
    guided_ratio: float = 0.95
    """Lowe's ratio of guided matching, looser than ``verify_ratio`` because a pair must
    also land where the first homography puts its art keypoint."""
    max_rejected: int = 2
    """First fits refused per art and photo before giving up on finding more copies."""
    guided_rounds: int = 2
    """Rounds of guided matching, each from the homography the previous one fitted: a
    small night sea (eight strict matches) needs the second round's matches to be placed
    within tolerance."""
    min_coverage: float = 0.05
    """Share of the art the inliers must span (convex hull): a shared logo is not the art.
    At 0.08 a bird on a plain sky (TwoWings) was refused with 23 inliers in place."""
    max_overlap: float = 0.5
    """Detections covering more of each other than this: only the stronger is kept."""
    flann_checks: int = 64
    """Leaves FLANN visits per query: the speed/accuracy knob of the vote."""
    max_copies: int = 6
    """Copies of one art looked for in one photo (a shelf shows a poster two or three
    times); bounds the find, remove, find again loop."""


DEFAULT_PARAMS = MatchParams()


class Matcher:
    """Matches images against one index; build once, reuse for every photo."""

    def __init__(self, index: Index, params: MatchParams = DEFAULT_PARAMS) -> None:
        self.index = index
        self.params = params
        self._sift = index.kind == "sift"
        self._basis: FloatArray | None = None
        if self._sift:
            # The vote searches RootSIFT projected on its main axes: half the memory and
            # half the tree-building time of 128 dimensions, and the vote only shortlists;
            # verification compares full descriptors.
            self._basis = _principal_axes(index.descriptors, VOTE_DIMS)
            self._data: AnyArray = _project(index.descriptors, self._basis)
            flann_params: FlannParams = {"algorithm": _FLANN_KDTREE, "trees": KD_TREES}
        else:
            self._data = index.descriptors
            flann_params = {
                "algorithm": _FLANN_LSH,
                "table_number": 6,
                "key_size": 12,
                "multi_probe_level": 1,
            }
        self._verifier = Verifier(params, ratio_pairs_l2 if self._sift else ratio_pairs_hamming)
        self._groups = _duplicate_groups(index)
        # FLANN keeps a pointer into self._data: the array must live as long as the index.
        self._flann = cv2.flann.Index(self._data, flann_params) if len(self._data) else None

    def _art_view(self, art: int) -> ArtView:
        """One art as verification compares it (full RootSIFT, or bytes)."""
        start, end = int(self.index.offsets[art]), int(self.index.offsets[art + 1])
        rows = self.index.descriptors[start:end]
        width, height = (float(v) for v in self.index.sizes[art])
        return ArtView(
            number=art,
            name=self.index.names[art],
            points=self.index.points[start:end],
            descriptors=to_float("sift", rows) if self._sift else rows,
            size=(width, height),
            corners=self.index.corners(art),
        )

    def match(self, photo: Features) -> list[Detection]:
        """Every copy of every art verified in ``photo``, best first, at most one per place."""
        if self._flann is None or len(photo) < self.params.min_inliers:
            return []
        query = to_float("sift", photo.descriptors) if self._sift else photo.descriptors
        probe = query if self._basis is None else query @ self._basis
        candidates, near = self._vote(np.ascontiguousarray(probe))
        found: list[Detection] = []
        for art in candidates:
            # Only photo descriptors that had this art among their neighbours can match it:
            # verifying those alone keeps the exact per-art test cheap.
            rows = np.nonzero((near == art).any(axis=1))[0]
            if len(rows) >= self.params.min_seed:
                found.extend(self._verifier.copies(self._art_view(art), photo, query, rows))
        found.sort(key=lambda d: d.inliers, reverse=True)
        return _suppress_overlaps(found, self.params.max_overlap)

    def _vote(self, query: AnyArray) -> tuple[list[int], npt.NDArray[np.int32]]:
        """Top-voted arts, and the art of each query's neighbours (-1 where none)."""
        assert self._flann is not None  # noqa: S101 - checked by the caller
        k = min(self.params.neighbours, len(self._data))
        idx, dist = self._flann.knnSearch(query, k, params={"checks": self.params.flann_checks})
        idx = np.asarray(idx, dtype=np.int64).reshape(len(query), k)
        dist = np.asarray(dist, dtype=np.float32).reshape(len(query), k)
        labels = self.index.labels[np.clip(idx, 0, None)]
        labels[idx < 0] = -1
        first = labels[:, 0]
        # The ratio test compares with the nearest *other* art; copies of one art (same
        # hash group) do not count as other, or a duplicated art could never be found.
        groups = np.where(labels >= 0, self._groups[np.clip(labels, 0, None)], -1)
        other = groups != groups[:, :1]
        has_other = other.any(axis=1)
        other_dist = dist[np.arange(len(dist)), other.argmax(axis=1)]
        # KD-tree distances are squared L2, LSH ones are Hamming counts.
        ratio = self.params.vote_ratio**2 if self._sift else self.params.vote_ratio
        passed = (first >= 0) & (~has_other | (dist[:, 0] < ratio * other_dist))
        votes = np.bincount(first[passed], minlength=len(self.index))
        order = np.argsort(-votes, kind="stable")[: self.params.candidates]
        chosen = [int(a) for a in order if votes[a] >= self.params.min_votes]
        # A copy gets the votes of its group's first member only: verify the whole group.
        for art in list(chosen):
            group = np.nonzero(self._groups == self._groups[art])[0]
            chosen.extend(int(g) for g in group if int(g) not in chosen)
        return chosen, labels


def _principal_axes(descriptors: npt.NDArray[np.uint8], dims: int) -> FloatArray:
    """The ``dims`` main axes (128 x dims) of the RootSIFT descriptors, from an even sample."""
    step = max(1, len(descriptors) // PCA_SAMPLE)
    sample = to_float("sift", descriptors[::step])
    if len(sample) < 2:
        return np.eye(128, dims, dtype=np.float32)
    # Axes through the origin (no centring): projections keep dot products comparable.
    _, vectors = np.linalg.eigh(sample.T @ sample)
    return np.ascontiguousarray(vectors[:, ::-1][:, :dims], dtype=np.float32)


def _project(descriptors: npt.NDArray[np.uint8], basis: FloatArray) -> FloatArray:
    """RootSIFT of every row projected on ``basis``, chunk by chunk."""
    out = np.empty((len(descriptors), basis.shape[1]), np.float32)
    for start in range(0, len(descriptors), PROJECT_CHUNK):
        chunk = descriptors[start : start + PROJECT_CHUNK]
        out[start : start + len(chunk)] = to_float("sift", chunk) @ basis
    return out


def _duplicate_groups(index: Index) -> npt.NDArray[np.int64]:
    """For each art, the smallest art whose perceptual hash is a near-duplicate of it."""
    groups = np.arange(len(index), dtype=np.int64)
    for i, j, _ in near_duplicates([int(h) for h in index.hashes]):
        # Union of two groups: relabel the larger id everywhere (packages are small enough).
        low, high = sorted((int(groups[i]), int(groups[j])))
        groups[groups == high] = low
    return groups


def _suppress_overlaps(found: list[Detection], max_overlap: float) -> list[Detection]:
    """Keep the stronger of two detections that claim mostly the same place."""
    kept: list[Detection] = []
    for det in found:
        if all(_overlap(det.corners, other.corners) <= max_overlap for other in kept):
            kept.append(det)
    return kept


def _overlap(a: FloatArray, b: FloatArray) -> float:
    """Intersection over the smaller area, so a small art inside a big false one counts."""
    inter, _ = cv2.intersectConvexConvex(a.reshape(-1, 1, 2), b.reshape(-1, 1, 2))
    smaller = min(abs(cv2.contourArea(a)), abs(cv2.contourArea(b)))
    return float(inter) / smaller if smaller > 0 else 1.0


def match_photo(
    matcher: Matcher,
    gray: Gray,
    *,
    max_side: int = DEFAULT_PHOTO_MAX_SIDE,
    max_features: int = DEFAULT_PHOTO_FEATURES,
) -> list[Detection]:
    """The arts in a whole photo: matched at ``max_side``, corners in the photo's pixels."""
    small, scale = normalise(gray, max_side)
    found = matcher.match(extract(small, matcher.index.kind, max_features))
    return [d.scaled(scale) for d in found]
