"""The package index: every enrolled art's keypoints and descriptors in one ``index.npz``.

Arrays are concatenated over arts with ``offsets`` marking where each art starts, so
the file loads with ``allow_pickle=False`` (no code runs when reading it) and stays
compact: uint8 descriptors, float32 points.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import cast

import numpy as np
import numpy.typing as npt

from notraining_agent.processors.keypoints.features import Features, no_features
from notraining_agent.processors.keypoints.options import FEATURE_KINDS, FeatureKind

INDEX_FILE = "index.npz"
INDEX_VERSION = 1


class IndexFileError(ValueError):
    """``index.npz`` is missing, from another version, or inconsistent."""


@dataclass(frozen=True)
class EnrolledArt:
    """One art ready for the index: its name, normalised size, features and hash."""

    name: str
    width: int
    height: int
    features: Features
    phash: int


@dataclass(frozen=True)
class Index:
    """Arts ``0..n-1`` with their features; ``labels[k]`` is the art of descriptor ``k``."""

    kind: FeatureKind
    names: tuple[str, ...]
    sizes: npt.NDArray[np.int32]
    offsets: npt.NDArray[np.int64]
    points: npt.NDArray[np.float32]
    descriptors: npt.NDArray[np.uint8]
    hashes: npt.NDArray[np.uint64]

    def __len__(self) -> int:
        return len(self.names)

    @cached_property
    def labels(self) -> npt.NDArray[np.int32]:
        """The art each descriptor row belongs to."""
        counts = np.diff(self.offsets)
        return np.repeat(np.arange(len(self.names), dtype=np.int32), counts)

    def features(self, art: int) -> Features:
        """The keypoints and descriptors of one art (views, not copies)."""
        start, end = int(self.offsets[art]), int(self.offsets[art + 1])
        return Features(self.points[start:end], self.descriptors[start:end])

    def corners(self, art: int) -> npt.NDArray[np.float32]:
        """The art's corners in its normalised frame, clockwise from top left."""
        width, height = (float(v) for v in self.sizes[art])
        return np.array([[0, 0], [width, 0], [width, height], [0, height]], dtype=np.float32)

    def save(self, directory: Path) -> Path:
        """Write ``index.npz`` into ``directory`` (temp file then rename) and return its path."""
        target = directory / INDEX_FILE
        partial = directory / (INDEX_FILE + ".partial")
        with partial.open("wb") as out:
            np.savez_compressed(
                out,
                version=np.array(INDEX_VERSION),
                kind=np.array(self.kind),
                names=np.array(self.names, dtype=np.str_),
                sizes=self.sizes,
                offsets=self.offsets,
                points=self.points,
                descriptors=self.descriptors,
                hashes=self.hashes,
            )
        partial.replace(target)
        return target


def build(kind: FeatureKind, arts: Sequence[EnrolledArt]) -> Index:
    """Concatenate enrolled arts into one index, in the given order."""
    counts = [len(art.features) for art in arts]
    offsets = np.zeros(len(arts) + 1, dtype=np.int64)
    offsets[1:] = np.cumsum(counts, dtype=np.int64)
    # Concatenated after an empty set, so no arts at all still give arrays of the right shape.
    empty = no_features(kind)
    return Index(
        kind=kind,
        names=tuple(art.name for art in arts),
        sizes=np.array([[a.width, a.height] for a in arts], dtype=np.int32).reshape(-1, 2),
        offsets=offsets,
        points=np.concatenate([empty.points, *(a.features.points for a in arts)]),
        descriptors=np.concatenate([empty.descriptors, *(a.features.descriptors for a in arts)]),
        hashes=np.array([a.phash for a in arts], dtype=np.uint64),
    )


def load(directory: Path) -> Index:
    """Read ``directory/index.npz``; IndexFileError names what is wrong with it."""
    path = directory / INDEX_FILE
    try:
        with np.load(path, allow_pickle=False) as data:
            arrays = {name: data[name] for name in data.files}
    except (OSError, ValueError, KeyError) as exc:
        raise IndexFileError(f"{path} cannot be read ({exc}); enroll the package again") from exc
    try:
        version = int(arrays["version"])
        kind = str(arrays["kind"])
        index = Index(
            kind=cast(FeatureKind, kind),
            names=tuple(str(n) for n in arrays["names"]),
            sizes=arrays["sizes"].astype(np.int32).reshape(-1, 2),
            offsets=arrays["offsets"].astype(np.int64),
            points=arrays["points"].astype(np.float32).reshape(-1, 2),
            descriptors=arrays["descriptors"].astype(np.uint8),
            hashes=arrays["hashes"].astype(np.uint64),
        )
    except KeyError as exc:
        raise IndexFileError(f"{path} lacks the array {exc}; enroll the package again") from exc
    if version != INDEX_VERSION or kind not in FEATURE_KINDS:
        raise IndexFileError(
            f"{path} is version {version} with {kind!r} features; this agent reads version "
            f"{INDEX_VERSION}: enroll the package again"
        )
    n = len(index.names)
    if index.offsets.shape != (n + 1,) or int(index.offsets[-1]) != len(index.descriptors):
        raise IndexFileError(f"{path} is inconsistent (offsets vs descriptors); enroll again")
    return index
