"""The job's arts: the union of the zip's files and the ``arts_path`` downloads (contract 4).

Both sides are matched by file name (the sanitised basename). A name on one
side only is an ``only_in_zip`` / ``only_in_arts_path`` discrepancy (only when
the job gave both sides); the same name with different bytes is
``different_bytes`` and the zip's copy is kept, since the zip is the package and
``arts_path`` lists its images one by one. Two files of one side with the same
name keep the first; different bytes between them are reported too.

Sources are URLs without query strings (signed URLs carry credentials); a zip
entry's source is the zip's URL with the entry path as fragment. The first source
is where the kept bytes came from.
"""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from notraining_agent.job.paths import safe_filename
from notraining_agent.job.transfer import Downloaded
from notraining_agent.processors.base import Art, Discrepancy
from notraining_agent.util.urls import shown_url

HASH_CHUNK_BYTES = 1024 * 1024


@dataclass(frozen=True)
class Inventory:
    """The arts, sorted by name, and every discrepancy between the two sides."""

    arts: tuple[Art, ...]
    discrepancies: tuple[Discrepancy, ...]


@dataclass(frozen=True)
class _Item:
    name: str
    path: Path
    source: str
    sha256: str
    size: int


async def build_inventory(
    *,
    zip_files: Sequence[Path],
    zip_root: Path,
    zip_url: str | None,
    downloads: Sequence[Downloaded],
    zip_digests: Mapping[Path, tuple[str, int]] | None = None,
) -> Inventory:
    """Join the zip's files with the downloads; hash a zip file only when not in ``zip_digests``.

    The extraction hashes while it writes (issue 12), so normally nothing is read again.
    """
    discrepancies: list[Discrepancy] = []
    shown_zip = shown_url(zip_url) if zip_url else "zip_art"
    # One thread hop for all the zip's files, not two per file (~85 us of CPU each).
    zipped = await asyncio.to_thread(_zip_items, zip_files, zip_root, shown_zip, zip_digests or {})
    listed = [_Item(d.name, d.path, shown_url(d.url), d.sha256, d.size) for d in downloads]
    zip_side = _by_name(zipped, "zip_art", discrepancies)
    arts_side = _by_name(listed, "arts_path", discrepancies)
    arts: list[Art] = []
    for name in sorted(zip_side.keys() | arts_side.keys()):
        in_zip, in_arts = zip_side.get(name), arts_side.get(name)
        if in_zip and in_arts:
            same = in_zip.sha256 == in_arts.sha256
            first, second = (in_arts, in_zip) if same else (in_zip, in_arts)
            if not same:
                discrepancies.append(
                    Discrepancy(
                        name,
                        "different_bytes",
                        f"zip_art has sha256 {in_zip.sha256} ({in_zip.size} bytes), arts_path "
                        f"has {in_arts.sha256} ({in_arts.size} bytes); the zip's copy is kept",
                    )
                )
            arts.append(_art(in_zip, (first.source, second.source)))
        elif in_zip:
            if listed:
                discrepancies.append(
                    Discrepancy(name, "only_in_zip", "in zip_art but not listed in arts_path")
                )
            arts.append(_art(in_zip, (in_zip.source,)))
        elif in_arts:
            if zip_url:
                discrepancies.append(
                    Discrepancy(name, "only_in_arts_path", "listed in arts_path but not in zip_art")
                )
            arts.append(_art(in_arts, (in_arts.source,)))
    return Inventory(tuple(arts), tuple(discrepancies))


def _art(item: _Item, sources: tuple[str, ...]) -> Art:
    return Art(name=item.name, path=item.path, sources=sources, sha256=item.sha256, size=item.size)


def _by_name(items: Sequence[_Item], side: str, found: list[Discrepancy]) -> dict[str, _Item]:
    """First item per name; a later one with other bytes becomes a discrepancy."""
    kept: dict[str, _Item] = {}
    for item in items:
        first = kept.setdefault(item.name, item)
        if first is not item and first.sha256 != item.sha256:
            found.append(
                Discrepancy(
                    item.name,
                    "different_bytes",
                    f"{side} holds two different files named {item.name} "
                    f"({first.source} kept, {item.source} ignored)",
                )
            )
    return kept


def _zip_items(
    zip_files: Sequence[Path],
    zip_root: Path,
    shown_zip: str,
    known: Mapping[Path, tuple[str, int]],
) -> list[_Item]:
    """The zip's files as items; a file is hashed only when ``known`` lacks its digest."""
    # The extractor hands back resolved paths; under DynamicUser= the state directory is a
    # symlink (/var/lib/X -> /var/lib/private/X), so compare resolved with resolved.
    root = zip_root.resolve()
    items: list[_Item] = []
    for path in zip_files:
        sha256, size = known.get(path) or _hash_file(path)
        entry = path.resolve().relative_to(root).as_posix()
        items.append(_Item(safe_filename(path.name), path, f"{shown_zip}#{entry}", sha256, size))
    return items


def _hash_file(path: Path) -> tuple[str, int]:
    digest = hashlib.sha256()
    size = 0
    with path.open("rb") as handle:
        while chunk := handle.read(HASH_CHUNK_BYTES):
            digest.update(chunk)
            size += len(chunk)
    return digest.hexdigest(), size
