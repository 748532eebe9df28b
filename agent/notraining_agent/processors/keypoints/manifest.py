"""``manifest.json`` and the user-facing warnings, assembled from the workers' events.

Pure Python, no cv2: it runs in the agent's process while the children work, turns
their events into progress, and at the end says per art how it will fare in the field.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from notraining_agent.processors.base import Art, Discrepancy
from notraining_agent.processors.keypoints.options import KeypointsOptions
from notraining_agent.util.fsio import atomic_write

MANIFEST_FILE = "manifest.json"
MANIFEST_VERSION = 1
MIN_FEATURES = 60
"""Fewer keypoints than this and an art cannot gather enough agreeing matches once it
is a quarter of its size in a photo: "too little texture"."""
MIN_RECALL = 0.7
"""Arts found in fewer than 5 of the 7 synthetic views are flagged as hard to recognise."""


@dataclass
class _ArtRecord:
    art: Art
    extracted: dict[str, Any] | None = None
    error: str | None = None
    checked: dict[str, Any] | None = None
    near: list[tuple[str, int]] = field(default_factory=list)


class ManifestBuilder:
    """Collects events; calls ``progress(done, total)`` as arts finish; writes the manifest."""

    def __init__(
        self,
        arts: Sequence[Art],
        options: KeypointsOptions,
        progress: Callable[[int, int], None],
    ) -> None:
        self.options = options
        self._records = [_ArtRecord(art) for art in arts]
        self._progress = progress
        self._done = 0
        self.descriptors = 0

    @property
    def enrolled(self) -> int:
        """Arts whose features were extracted."""
        return sum(1 for r in self._records if r.extracted is not None)

    @property
    def errors(self) -> list[str]:
        """``name: reason`` for every art that could not be enrolled."""
        return [f"{r.art.name}: {r.error}" for r in self._records if r.error is not None]

    def on_event(self, event: dict[str, Any]) -> None:
        """Take one worker event into account."""
        kind = event.get("event")
        if kind == "extracted":
            record = self._records[int(event["art"])]
            if event.get("ok"):
                record.extracted = event
                if not self.options.conditions:
                    self._finish()
            else:
                record.error = str(event.get("error", "unknown error"))
                self._finish()
        elif kind == "indexed":
            self.descriptors = int(event.get("descriptors", 0))
            for i, j, distance in event.get("near_duplicates", []):
                a, b = self._records[int(i)], self._records[int(j)]
                a.near.append((b.art.name, int(distance)))
                b.near.append((a.art.name, int(distance)))
        elif kind == "checked":
            self._records[int(event["art"])].checked = event
            self._finish()

    def _finish(self) -> None:
        self._done += 1
        self._progress(self._done, len(self._records))

    def build(self, discrepancies: Sequence[Discrepancy]) -> dict[str, Any]:
        """The manifest: options, every art with its figures and warnings, all warnings."""
        arts = [self._art_entry(r) for r in self._records]
        return {
            "version": MANIFEST_VERSION,
            "processor": "keypoints",
            "features": self.options.features,
            "max_side": self.options.max_side,
            "art_features": self.options.art_features,
            "conditions": list(self.options.conditions),
            "index": "index.npz",
            "arts_total": len(arts),
            "arts_enrolled": self.enrolled,
            "descriptors": self.descriptors,
            "arts": arts,
            "discrepancies": [
                {"name": d.name, "kind": d.kind, "detail": d.detail} for d in discrepancies
            ],
            "warnings": [w for entry in arts for w in entry["warnings"]],
        }

    def _art_entry(self, record: _ArtRecord) -> dict[str, Any]:
        name = record.art.name
        entry: dict[str, Any] = {"name": name, "sha256": record.art.sha256}
        if record.extracted is None:
            reason = record.error or "not processed"
            entry.update(
                status="failed", error=reason, warnings=[f"{name}: not enrolled: {reason}"]
            )
            return entry
        ex = record.extracted
        warnings: list[str] = []
        features = int(ex["features"])
        if features < MIN_FEATURES:
            warnings.append(
                f"{name}: too little texture ({features} keypoints, needs {MIN_FEATURES}); "
                "it will not be recognised: add detail or contrast to the art"
            )
        for other, distance in sorted(record.near, key=lambda item: item[1]):
            warnings.append(
                f"{name}: near-duplicate of {other} (hash distance {distance} of 64); "
                "the two may be confused in photos"
            )
        entry.update(
            status="enrolled",
            width=ex["width"],
            height=ex["height"],
            enrolled_width=ex["enrolled_width"],
            enrolled_height=ex["enrolled_height"],
            features=features,
            phash=ex["phash"],
            near_duplicates=[{"name": n, "distance": d} for n, d in sorted(record.near)],
            recall=None,
            missed_views=[],
            confusions=[],
        )
        if record.checked is not None:
            checked = record.checked
            views = int(checked["views"])
            recall = int(checked["found"]) / views if views else 0.0
            confusions = sorted(checked.get("confusions", {}).items())
            entry.update(
                recall=round(recall, 3),
                views=views,
                missed_views=list(checked.get("missed", [])),
                confusions=[{"name": n, "views": c} for n, c in confusions],
            )
            if recall < MIN_RECALL:
                missed = ", ".join(checked.get("missed", []))
                warnings.append(
                    f"{name}: recognised in {checked['found']} of {views} synthetic photos "
                    f"(recall {recall:.2f}, missed: {missed}); it may be missed in the field"
                )
            for other, count in confusions:
                warnings.append(
                    f"{name}: {other} was detected instead in {count} of {views} synthetic photos"
                )
        entry["warnings"] = warnings
        return entry


def write_manifest(directory: Path, manifest: dict[str, Any]) -> Path:
    """Write ``manifest.json`` atomically, so a published folder never holds half of one."""
    target = directory / MANIFEST_FILE
    atomic_write(target, json.dumps(manifest, indent=2, ensure_ascii=False) + "\n")
    return target
