"""Image format and size from headers alone, agreeing with Pillow on the formats arts use."""

from __future__ import annotations

import io
import struct
from pathlib import Path

import pytest
from notraining_agent.processors.imagesize import UnknownFormatError, read_known
from notraining_agent.processors.manifest import read_header
from PIL import Image


def encoded(image_format: str, size: tuple[int, int], **options: object) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", size, (200, 10, 10)).save(buffer, image_format, **options)
    return buffer.getvalue()


@pytest.mark.parametrize(
    ("image_format", "options"),
    [
        ("JPEG", {}),
        ("JPEG", {"progressive": True, "exif": b"Exif\x00\x00" + b"\x00" * 2000}),
        ("PNG", {}),
        ("GIF", {}),
        ("WEBP", {}),
        ("WEBP", {"lossless": True}),
        ("BMP", {}),
    ],
)
def test_same_answer_as_pillow(image_format: str, options: dict[str, object]) -> None:
    """Each format the agent reads itself gives Pillow's format name and size."""
    data = encoded(image_format, (123, 45), **options)
    with Image.open(io.BytesIO(data)) as image:
        expected = (image.format, image.width, image.height, None)
    assert read_known(io.BytesIO(data)) == expected


def test_corrupt_jpeg_is_a_problem_not_a_crash() -> None:
    """JPEG magic followed by noise (the legacy fixtures' fake images) is reported, not read."""
    noise = b"\xff\xd8\xff\xe0" + bytes(range(7, 250)) * 40 + b"\xff\xd9"
    image_format, width, height, problem = read_known(io.BytesIO(noise))
    assert (image_format, width, height) == (None, None, None)
    assert problem is not None and "JPEG" in problem


def test_header_claiming_a_bomb_is_refused() -> None:
    """A GIF header claiming more pixels than Pillow's bomb limit is a problem, not a size."""
    data = b"GIF89a" + struct.pack("<HH", 65_535, 65_535) + b"\x00" * 22
    assert read_known(io.BytesIO(data))[3] == "its header claims too many pixels"


def test_other_formats_go_to_pillow(tmp_path: Path) -> None:
    """A format not read here (TIFF) is still described, through Pillow."""
    with pytest.raises(UnknownFormatError):
        read_known(io.BytesIO(encoded("TIFF", (7, 9))))
    path = tmp_path / "art.tiff"
    path.write_bytes(encoded("TIFF", (7, 9)))
    assert read_header(path) == ("TIFF", 7, 9, None)
