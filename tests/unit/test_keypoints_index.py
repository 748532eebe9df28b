"""index.npz: building, saving and loading the package index."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from notraining_agent.processors.keypoints import index
from notraining_agent.processors.keypoints.features import Features
from notraining_agent.processors.keypoints.index import EnrolledArt, IndexFileError, build, load


def _art(name: str, count: int, width: int = 40) -> EnrolledArt:
    points = np.arange(count * 2, dtype=np.float32).reshape(count, 2)
    descriptors = np.full((count, 128), count, dtype=np.uint8)
    return EnrolledArt(name, width, 30, Features(points, descriptors), phash=count)


def test_round_trip(tmp_path: Path) -> None:
    """What is saved loads back identical: names, sizes, per-art features, hashes."""
    built = build("sift", [_art("a.png", 3), _art("b.png", 0), _art("c é.png", 2, 50)])
    built.save(tmp_path)
    loaded = load(tmp_path)
    assert loaded.names == ("a.png", "b.png", "c é.png")
    assert loaded.kind == "sift"
    assert len(loaded.features(0)) == 3
    assert len(loaded.features(1)) == 0
    assert np.array_equal(loaded.features(2).descriptors, built.features(2).descriptors)
    assert loaded.labels.tolist() == [0, 0, 0, 2, 2]
    assert loaded.hashes.tolist() == [3, 0, 2]
    assert loaded.corners(2).tolist() == [[0, 0], [50, 0], [50, 30], [0, 30]]
    assert not (tmp_path / "index.npz.partial").exists()


def test_empty_index(tmp_path: Path) -> None:
    """An index without arts is valid (every art failed) and loads back empty."""
    build("orb", []).save(tmp_path)
    loaded = load(tmp_path)
    assert len(loaded) == 0
    assert loaded.descriptors.shape == (0, 32)


def test_missing_or_corrupt_file_is_explained(tmp_path: Path) -> None:
    """No index.npz, or junk in it, raises IndexFileError telling to enroll again."""
    with pytest.raises(IndexFileError, match="enroll"):
        load(tmp_path)
    (tmp_path / "index.npz").write_bytes(b"junk")
    with pytest.raises(IndexFileError, match="enroll"):
        load(tmp_path)


def test_other_version_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """An index written by another format version is refused, not misread."""
    monkeypatch.setattr(index, "INDEX_VERSION", 99)
    build("sift", [_art("a", 2)]).save(tmp_path)
    monkeypatch.setattr(index, "INDEX_VERSION", 1)
    with pytest.raises(IndexFileError, match="version 99"):
        load(tmp_path)


def test_inconsistent_offsets_are_refused(tmp_path: Path) -> None:
    """Offsets that do not add up to the descriptor count mean a damaged file."""
    built = build("sift", [_art("a", 2)])
    np.savez(
        tmp_path / "index.npz",
        version=np.array(1),
        kind=np.array("sift"),
        names=np.array(built.names),
        sizes=built.sizes,
        offsets=np.array([0, 5]),
        points=built.points,
        descriptors=built.descriptors,
        hashes=built.hashes,
    )
    with pytest.raises(IndexFileError, match="inconsistent"):
        load(tmp_path)
