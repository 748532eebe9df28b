"""Generated POP art: deterministic, decodable, textured, and zipped like Saturno's packages."""

from __future__ import annotations

import io
import zipfile

import pytest
from notraining_testkit.emulators.artgen import (
    ImageFormat,
    flat_art,
    generate_art,
    generate_package,
    zip_arts,
)
from PIL import Image


def test_same_seed_same_bytes() -> None:
    """A seed always gives the same image bytes; another seed gives another image."""
    assert generate_art(7) == generate_art(7)
    assert generate_art(7) != generate_art(8)


@pytest.mark.parametrize(("fmt", "pil_format"), [("PNG", "PNG"), ("JPEG", "JPEG")])
def test_art_decodes_at_its_size(fmt: ImageFormat, pil_format: str) -> None:
    """The bytes decode as the requested format and size."""
    with Image.open(io.BytesIO(generate_art(1, size=(320, 200), fmt=fmt))) as image:
        assert image.format == pil_format
        assert image.size == (320, 200)


def test_art_has_many_colours() -> None:
    """A poster is busy: hundreds of distinct colours, not a flat fill."""
    with Image.open(io.BytesIO(generate_art(3))) as image:
        colours = image.convert("RGB").getcolors(maxcolors=1_000_000)
    assert colours is not None
    assert len(colours) > 100


def test_flat_art_is_one_colour() -> None:
    """flat_art is a single colour of the given size."""
    with Image.open(io.BytesIO(flat_art((10, 20, 30), size=(50, 40)))) as image:
        assert image.size == (50, 40)
        assert image.convert("RGB").getcolors() == [(2000, (10, 20, 30))]


def test_keypoints_rich_and_flat_poor() -> None:
    """ORB finds hundreds of keypoints on a poster and none on a flat art."""
    cv2 = pytest.importorskip("cv2")
    np = pytest.importorskip("numpy")
    orb = cv2.ORB_create(nfeatures=2000)

    def keypoints(data: bytes) -> int:
        image = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_GRAYSCALE)
        return len(orb.detect(image, None))

    assert keypoints(generate_art(5)) > 500
    assert keypoints(flat_art()) == 0


def test_package_files_and_zip_agree() -> None:
    """The zip holds a folder entry and each art under it, byte for byte."""
    package = generate_package(3, seed=2)
    assert package.names == ("art_001.png", "art_002.png", "art_003.png")
    assert package.folder == "POP_0002"
    with zipfile.ZipFile(io.BytesIO(package.zip_bytes)) as archive:
        assert archive.namelist() == [
            "POP_0002/",
            "POP_0002/art_001.png",
            "POP_0002/art_002.png",
            "POP_0002/art_003.png",
        ]
        for name in package.names:
            assert archive.read(f"POP_0002/{name}") == package.files[name]
    assert len(set(package.files.values())) == 3


def test_package_is_deterministic_and_read_only() -> None:
    """Same count and seed give the same zip bytes; the files mapping cannot be changed."""
    first, second = generate_package(2, seed=9), generate_package(2, seed=9)
    assert first.zip_bytes == second.zip_bytes
    assert generate_package(2, seed=10).zip_bytes != first.zip_bytes
    with pytest.raises(TypeError):
        first.files["art_001.png"] = b"x"  # type: ignore[index]


def test_jpeg_package_and_custom_folder() -> None:
    """fmt='JPEG' names arts .jpg; folder='' zips them at the root."""
    package = generate_package(1, fmt="JPEG", folder="")
    assert package.names == ("art_001.jpg",)
    with zipfile.ZipFile(io.BytesIO(package.zip_bytes)) as archive:
        assert archive.namelist() == ["art_001.jpg"]


def test_zip_arts_any_files() -> None:
    """zip_arts zips arbitrary files, sorted, under the folder given."""
    data = zip_arts({"b.txt": b"2", "a.txt": b"1"}, "pkg/")
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        assert archive.namelist() == ["pkg/", "pkg/a.txt", "pkg/b.txt"]
