"""manifest.json and the warnings, built from the workers' events."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from notraining_agent.processors.base import Art, Discrepancy
from notraining_agent.processors.keypoints.manifest import ManifestBuilder, write_manifest
from notraining_agent.processors.keypoints.options import KeypointsOptions


def _arts(*names: str) -> tuple[Art, ...]:
    return tuple(Art(n, Path(n), ("zip",), "0" * 64, 10) for n in names)


def _extracted(art: int, features: int = 500) -> dict[str, Any]:
    return {
        "event": "extracted",
        "art": art,
        "ok": True,
        "features": features,
        "phash": "00000000000000ff",
        "width": 640,
        "height": 480,
        "enrolled_width": 640,
        "enrolled_height": 480,
    }


def _checked(art: int, found: int, confusions: dict[str, int] | None = None) -> dict[str, Any]:
    missed = ["blur", "scale", "jpeg", "rotation", "lighting", "occlusion", "perspective"]
    return {
        "event": "checked",
        "art": art,
        "views": 7,
        "found": found,
        "missed": missed[: 7 - found],
        "confusions": confusions or {},
    }


def test_progress_counts_arts_once_finished() -> None:
    """progress(done, total) ticks when an art is checked, or fails, never twice per art."""
    calls: list[tuple[int, int]] = []
    builder = ManifestBuilder(
        _arts("a", "b", "c"), KeypointsOptions(), lambda d, t: calls.append((d, t))
    )
    builder.on_event(_extracted(0))
    builder.on_event({"event": "extracted", "art": 1, "ok": False, "error": "not an image"})
    builder.on_event(_extracted(2))
    assert calls == [(1, 3)]
    builder.on_event({"event": "indexed", "arts": 2, "descriptors": 1000, "near_duplicates": []})
    builder.on_event(_checked(0, 7))
    builder.on_event(_checked(2, 7))
    assert calls == [(1, 3), (2, 3), (3, 3)]
    assert builder.enrolled == 2
    assert builder.errors == ["b: not an image"]


def test_progress_without_check_counts_extractions() -> None:
    """With no synthetic views, an art is done once extracted."""
    calls: list[tuple[int, int]] = []
    options = KeypointsOptions(conditions=())
    builder = ManifestBuilder(_arts("a"), options, lambda d, t: calls.append((d, t)))
    builder.on_event(_extracted(0))
    assert calls == [(1, 1)]


def test_manifest_lists_every_art_and_every_warning() -> None:
    """Low texture, near-duplicates, low recall, confusions and failures become warnings."""
    arts = _arts("good.png", "flat.png", "twin1.png", "twin2.png", "broken.pdf")
    builder = ManifestBuilder(arts, KeypointsOptions(), lambda d, t: None)
    builder.on_event(_extracted(0))
    builder.on_event(_extracted(1, features=3))
    builder.on_event(_extracted(2))
    builder.on_event(_extracted(3))
    builder.on_event({"event": "extracted", "art": 4, "ok": False, "error": "not an image"})
    builder.on_event(
        {"event": "indexed", "arts": 4, "descriptors": 1503, "near_duplicates": [[2, 3, 0]]}
    )
    builder.on_event(_checked(0, 7))
    builder.on_event(_checked(1, 0))
    builder.on_event(_checked(2, 4, {"twin2.png": 3}))
    builder.on_event(_checked(3, 6))
    manifest = builder.build([Discrepancy("x.png", "only_in_zip", "not in arts_path")])

    by_name = {a["name"]: a for a in manifest["arts"]}
    assert manifest["arts_total"] == 5
    assert manifest["arts_enrolled"] == 4
    assert manifest["descriptors"] == 1503
    assert by_name["good.png"]["warnings"] == []
    assert by_name["good.png"]["recall"] == 1.0
    assert by_name["good.png"]["phash"] == "00000000000000ff"
    assert "too little texture" in by_name["flat.png"]["warnings"][0]
    assert "recall 0.00" in by_name["flat.png"]["warnings"][1]
    assert by_name["twin1.png"]["near_duplicates"] == [{"name": "twin2.png", "distance": 0}]
    assert by_name["twin1.png"]["confusions"] == [{"name": "twin2.png", "views": 3}]
    assert any("near-duplicate of twin1.png" in w for w in by_name["twin2.png"]["warnings"])
    assert by_name["broken.pdf"]["status"] == "failed"
    assert by_name["broken.pdf"]["error"] == "not an image"
    assert manifest["discrepancies"] == [
        {"name": "x.png", "kind": "only_in_zip", "detail": "not in arts_path"}
    ]
    flat = [w for a in manifest["arts"] for w in a["warnings"]]
    assert manifest["warnings"] == flat
    assert len(flat) == 7  # flat 2, twin1 3 (twin, recall, confusion), twin2 1, broken 1


def test_write_manifest_is_atomic_json(tmp_path: Path) -> None:
    """manifest.json is complete JSON, and no temp file is left behind."""
    path = write_manifest(tmp_path, {"version": 1, "arts": ["é"]})
    assert json.loads(path.read_text(encoding="utf-8")) == {"version": 1, "arts": ["é"]}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["manifest.json"]
