"""Inventory: the union of zip and arts_path by name, with every discrepancy recorded."""

from __future__ import annotations

import hashlib
from pathlib import Path

from notraining_agent.job.inventory import build_inventory
from notraining_agent.job.transfer import Downloaded

ZIP_URL = "https://arts.example.com/p.zip?sig=secret"


def zipped(root: Path, files: dict[str, bytes]) -> list[Path]:
    paths = []
    for name, data in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
        paths.append(path)
    return paths


def downloaded(folder: Path, name: str, data: bytes, url: str | None = None) -> Downloaded:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{len(list(folder.iterdir()))}-{name}"
    path.write_bytes(data)
    return Downloaded(
        url=url or f"https://arts.example.com/arts/{name}?sig=secret",
        name=name,
        path=path,
        size=len(data),
        sha256=hashlib.sha256(data).hexdigest(),
    )


async def test_union_and_discrepancies(tmp_path: Path) -> None:
    """Same bytes merge; one-sided names and different bytes are reported; zip copy kept."""
    root = tmp_path / "zip"
    files = zipped(root, {"POP/a.png": b"A", "POP/b.png": b"B-zip", "POP/z.png": b"Z"})
    dl = tmp_path / "dl"
    downloads = [
        downloaded(dl, "a.png", b"A"),
        downloaded(dl, "b.png", b"B-web"),
        downloaded(dl, "c.png", b"C"),
    ]
    inventory = await build_inventory(
        zip_files=files, zip_root=root, zip_url=ZIP_URL, downloads=downloads
    )
    arts = {art.name: art for art in inventory.arts}
    assert list(arts) == ["a.png", "b.png", "c.png", "z.png"]
    assert arts["a.png"].sources == (
        "https://arts.example.com/arts/a.png",
        "https://arts.example.com/p.zip#POP/a.png",
    )
    assert arts["b.png"].path == root / "POP" / "b.png"
    assert arts["b.png"].sha256 == hashlib.sha256(b"B-zip").hexdigest()
    assert arts["b.png"].sources[0] == "https://arts.example.com/p.zip#POP/b.png"
    assert arts["c.png"].size == 1
    kinds = {(d.name, d.kind) for d in inventory.discrepancies}
    assert kinds == {
        ("b.png", "different_bytes"),
        ("c.png", "only_in_arts_path"),
        ("z.png", "only_in_zip"),
    }
    assert all("secret" not in s for art in inventory.arts for s in art.sources)


async def test_one_side_only_has_no_discrepancies(tmp_path: Path) -> None:
    """A job with only a zip (or only arts_path) has nothing to compare."""
    root = tmp_path / "zip"
    only_zip = await build_inventory(
        zip_files=zipped(root, {"a.png": b"A"}), zip_root=root, zip_url=ZIP_URL, downloads=[]
    )
    assert [a.name for a in only_zip.arts] == ["a.png"] and only_zip.discrepancies == ()
    only_paths = await build_inventory(
        zip_files=[],
        zip_root=root,
        zip_url=None,
        downloads=[downloaded(tmp_path / "d", "x.png", b"X")],
    )
    assert [a.name for a in only_paths.arts] == ["x.png"] and only_paths.discrepancies == ()


async def test_same_name_twice_on_one_side(tmp_path: Path) -> None:
    """Two zip folders with one file name keep the first; different bytes are reported."""
    root = tmp_path / "zip"
    files = zipped(root, {"a/x.png": b"1", "b/x.png": b"2", "c/y.png": b"3", "d/y.png": b"3"})
    inventory = await build_inventory(zip_files=files, zip_root=root, zip_url=ZIP_URL, downloads=[])
    assert [a.name for a in inventory.arts] == ["x.png", "y.png"]
    assert inventory.arts[0].path == root / "a" / "x.png"
    assert [(d.name, d.kind) for d in inventory.discrepancies] == [("x.png", "different_bytes")]


async def test_zip_digests_from_the_extraction_are_not_recomputed(tmp_path: Path) -> None:
    """A digest handed over by the extraction is used as is: the file is not read again."""
    root = tmp_path / "zip"
    paths = zipped(root, {"a.jpg": b"bytes on disk"})
    given = ("0" * 64, 99)
    inventory = await build_inventory(
        zip_files=paths,
        zip_root=root,
        zip_url="https://arts.example.com/p.zip",
        downloads=[],
        zip_digests={paths[0]: given},
    )
    assert (inventory.arts[0].sha256, inventory.arts[0].size) == given


async def test_zip_root_behind_a_symlink(tmp_path: Path) -> None:
    """A state dir reached through a symlink (DynamicUser=) still names entries by zip path."""
    real = tmp_path / "private" / "state"
    link = tmp_path / "state"
    real.mkdir(parents=True)
    link.symlink_to(real)
    files = [p.resolve() for p in zipped(real / "zip", {"POP/a.png": b"A"})]
    inventory = await build_inventory(
        zip_files=files, zip_root=link / "zip", zip_url=ZIP_URL, downloads=[]
    )
    assert [art.name for art in inventory.arts] == ["a.png"]
    assert inventory.arts[0].sources == ("https://arts.example.com/p.zip#POP/a.png",)
