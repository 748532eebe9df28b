"""The manifest processor: one entry per art from image headers, discrepancies, warnings."""

from __future__ import annotations

import hashlib
import io
import json
import zlib
from pathlib import Path

from notraining_agent.job.spec import JobSpec
from notraining_agent.processors.base import Art, Discrepancy, ProcessorContext
from notraining_agent.processors.manifest import MANIFEST_NAME, process, read_header
from PIL import Image

SPEC = JobSpec(
    ntd_transaction_id="42",
    no_transaction_id="7",
    country="MX",
    channel="instagram",
    label="summer",
    category="POP",
    zip_art="https://arts.example.com/p.zip?sig=secret",
    arts_path=("https://arts.example.com/a.png",),
)


def image_bytes(fmt: str, size: tuple[int, int]) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", size, (237, 28, 36)).save(buffer, fmt)
    return buffer.getvalue()


def art(folder: Path, name: str, data: bytes, *sources: str) -> Art:
    path = folder / name
    path.write_bytes(data)
    return Art(
        name,
        path,
        sources or (f"https://a.io/{name}",),
        hashlib.sha256(data).hexdigest(),
        len(data),
    )


async def test_manifest_contents(tmp_path: Path) -> None:
    """PNG and JPEG get format and size; a text file gets nulls and a warning; job ids kept."""
    arts = (
        art(
            tmp_path,
            "a.png",
            image_bytes("PNG", (64, 32)),
            "https://a.io/a.png",
            "https://a.io/p.zip#a.png",
        ),
        art(tmp_path, "b.jpg", image_bytes("JPEG", (20, 10))),
        art(tmp_path, "notes.txt", b"not an image"),
    )
    discrepancy = Discrepancy(
        "c.png", "only_in_arts_path", "listed in arts_path but not in zip_art"
    )
    progress: list[tuple[int, int]] = []
    ctx = ProcessorContext(
        job=SPEC,
        arts=arts,
        discrepancies=(discrepancy,),
        work_dir=tmp_path / "work",
        output_dir=tmp_path / "out",
        progress=lambda done, total: progress.append((done, total)),
    )
    result = await process(ctx)
    manifest = json.loads((tmp_path / "out" / MANIFEST_NAME).read_text(encoding="utf-8"))
    assert result.arts == 3
    assert progress == [(0, 3), (1, 3), (2, 3), (3, 3)]
    assert manifest["ntd_transaction_id"] == "42" and manifest["no_transaction_id"] == "7"
    assert manifest["zip_art"] == "https://arts.example.com/p.zip"  # no signature in output
    assert manifest["arts_count"] == 3
    by_name = {entry["name"]: entry for entry in manifest["arts"]}
    assert by_name["a.png"] == {
        "name": "a.png",
        "source_url": "https://a.io/a.png",
        "sources": ["https://a.io/a.png", "https://a.io/p.zip#a.png"],
        "sha256": arts[0].sha256,
        "bytes": arts[0].size,
        "format": "PNG",
        "width": 64,
        "height": 32,
    }
    assert (by_name["b.jpg"]["format"], by_name["b.jpg"]["width"], by_name["b.jpg"]["height"]) == (
        "JPEG",
        20,
        10,
    )
    assert by_name["notes.txt"]["format"] is None and by_name["notes.txt"]["width"] is None
    assert manifest["discrepancies"] == [
        {"name": "c.png", "kind": "only_in_arts_path", "detail": discrepancy.detail}
    ]
    assert any("notes.txt" in w for w in result.warnings)
    assert any("differ" in w for w in result.warnings)
    assert result.extra["manifest"] == MANIFEST_NAME


def png_claiming(path: Path, width: int, height: int) -> Path:
    """A 1-pixel PNG whose header claims ``width`` x ``height`` (CRC fixed up)."""
    Image.new("1", (1, 1)).save(path)
    data = bytearray(path.read_bytes())
    data[16:24] = width.to_bytes(4, "big") + height.to_bytes(4, "big")
    data[29:33] = zlib.crc32(bytes(data[12:29])).to_bytes(4, "big")
    path.write_bytes(bytes(data))
    return path


def test_headers_are_read_without_decoding(tmp_path: Path) -> None:
    """A header over Pillow's bomb warning still gives its size; past its error, a warning."""
    large = read_header(png_claiming(tmp_path / "large.png", 15_000, 10_000))
    assert large == ("PNG", 15_000, 10_000, None)
    huge = read_header(png_claiming(tmp_path / "huge.png", 100_000, 100_000))
    assert huge[:3] == (None, None, None)
    assert huge[3] is not None and "pixels" in huge[3]
