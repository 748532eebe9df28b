"""util.fsio: atomic replacement of a file."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from notraining_agent.util.fsio import atomic_write


def test_atomic_write_replaces_the_whole_file(tmp_path: Path) -> None:
    """atomic_write swaps in the new text whole, even when the new text is shorter."""
    path = tmp_path / "f.json"
    atomic_write(path, "x" * 1000)
    atomic_write(path, "short")
    assert path.read_text(encoding="utf-8") == "short"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["f.json"]


def test_atomic_write_not_durable_skips_the_fsyncs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """durable=False still swaps the file in whole, without waiting for the disk."""
    path = tmp_path / "manifest.json"
    atomic_write(path, "old")
    synced: list[int] = []
    monkeypatch.setattr(os, "fsync", synced.append)
    atomic_write(path, "new", durable=False)
    assert path.read_text(encoding="utf-8") == "new"
    assert synced == []
    assert sorted(p.name for p in tmp_path.iterdir()) == ["manifest.json"]
    atomic_write(path, "durable")
    assert len(synced) == 2  # the file, then its folder
