"""util.fsio: atomic replacement of a file."""

from __future__ import annotations

from pathlib import Path

from notraining_agent.util.fsio import atomic_write


def test_atomic_write_replaces_the_whole_file(tmp_path: Path) -> None:
    """atomic_write swaps in the new text whole, even when the new text is shorter."""
    path = tmp_path / "f.json"
    atomic_write(path, "x" * 1000)
    atomic_write(path, "short")
    assert path.read_text(encoding="utf-8") == "short"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["f.json"]
