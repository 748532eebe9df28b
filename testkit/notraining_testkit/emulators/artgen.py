"""Deterministic POP art posters, generated offline, to stand in for Saturno's art packages.

Each poster is a gradient with Ben-Day dots, many outlined shapes, bold lines and
comic words: strong corners and edges everywhere, so keypoint detectors (ORB,
SIFT) find plenty to match. The same seed gives the same bytes with the same
Pillow build; no network, no font download (Pillow's bundled default font).
"""

from __future__ import annotations

import io
import math
import random
import zipfile
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Literal

from PIL import Image, ImageDraw, ImageFont, ImageOps

ImageFormat = Literal["PNG", "JPEG"]
Color = tuple[int, int, int]
Size = tuple[int, int]

DEFAULT_SIZE: Size = (640, 480)
ZIP_DATE = (2024, 1, 1, 0, 0, 0)
"""A fixed timestamp for zip entries, so a package's zip bytes depend only on its seed."""

PALETTE: tuple[Color, ...] = (
    (255, 221, 0),  # yellow
    (237, 28, 36),  # red
    (0, 114, 188),  # blue
    (236, 0, 140),  # magenta
    (0, 166, 81),  # green
    (255, 127, 39),  # orange
    (0, 174, 239),  # cyan
    (255, 255, 255),
)
INK: Color = (0, 0, 0)
WORDS = ("POW!", "BAM!", "ZAP!", "WOW!", "POP!", "BOOM!", "WHAM!", "OK!")
_EXTENSIONS: dict[ImageFormat, str] = {"PNG": "png", "JPEG": "jpg"}


@dataclass(frozen=True)
class ArtPackage:
    """A package like the ones Saturno sends: the arts by file name, and the same in a zip."""

    files: MappingProxyType[str, bytes]
    zip_bytes: bytes
    folder: str
    names: tuple[str, ...] = field(init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "names", tuple(sorted(self.files)))


def generate_art(seed: int, size: Size = DEFAULT_SIZE, fmt: ImageFormat = "PNG") -> bytes:
    """One textured poster, encoded as ``fmt``; the same seed gives the same image."""
    rng = random.Random(seed)
    width, height = size
    image = _gradient(rng, size)
    draw = ImageDraw.Draw(image)
    _dots(rng, draw, size)
    for _ in range(rng.randint(25, 40)):
        _shape(rng, draw, size)
    for _ in range(rng.randint(8, 15)):
        points = [(rng.randrange(width), rng.randrange(height)) for _ in range(2)]
        draw.line(points, fill=INK, width=rng.randint(2, 6))
    for _ in range(rng.randint(2, 4)):
        _word(rng, draw, size)
    return _encode(image, fmt)


def flat_art(color: Color | str = (237, 28, 36), size: Size = DEFAULT_SIZE) -> bytes:
    """A single-colour PNG: an art with too little texture to match anything."""
    return _encode(Image.new("RGB", size, color), "PNG")


def generate_package(
    count: int,
    seed: int = 0,
    *,
    folder: str | None = None,
    fmt: ImageFormat = "PNG",
    size: Size = DEFAULT_SIZE,
) -> ArtPackage:
    """``count`` arts named ``art_001.png``..., and a zip holding them under one folder."""
    folder = folder if folder is not None else f"POP_{seed:04d}"
    ext = _EXTENSIONS[fmt]
    files = {
        f"art_{i:03d}.{ext}": generate_art(seed * 100_003 + i, size, fmt)
        for i in range(1, count + 1)
    }
    return ArtPackage(MappingProxyType(files), zip_arts(files, folder), folder)


def zip_arts(files: dict[str, bytes], folder: str = "") -> bytes:
    """Zip ``files`` under ``folder/`` (with its directory entry, as desktop zippers do)."""
    buffer = io.BytesIO()
    prefix = f"{folder.strip('/')}/" if folder else ""
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        if prefix:
            archive.writestr(zipfile.ZipInfo(prefix, ZIP_DATE), b"")
        for name in sorted(files):
            info = zipfile.ZipInfo(prefix + name, ZIP_DATE)
            info.compress_type = zipfile.ZIP_DEFLATED
            archive.writestr(info, files[name])
    return buffer.getvalue()


def _gradient(rng: random.Random, size: Size) -> Image.Image:
    start, end = rng.sample(PALETTE, 2)
    ramp = Image.linear_gradient("L").rotate(rng.choice((0, 90, 180, 270))).resize(size)
    return ImageOps.colorize(ramp, start, end).convert("RGB")


def _dots(rng: random.Random, draw: ImageDraw.ImageDraw, size: Size) -> None:
    """Ben-Day dots over a random band: the halftone texture of printed comics."""
    width, height = size
    step = rng.randint(8, 14)
    radius = step // 3
    color = rng.choice(PALETTE)
    x0, x1 = sorted(rng.randrange(width) for _ in range(2))
    y0, y1 = sorted(rng.randrange(height) for _ in range(2))
    for row, y in enumerate(range(y0, y1, step)):
        for x in range(x0 + (row % 2) * step // 2, x1, step):
            draw.ellipse((x - radius, y - radius, x + radius, y + radius), fill=color)


def _shape(rng: random.Random, draw: ImageDraw.ImageDraw, size: Size) -> None:
    width, height = size
    x, y = rng.randrange(width), rng.randrange(height)
    w, h = rng.randint(15, width // 4), rng.randint(15, height // 4)
    box = (x, y, x + w, y + h)
    fill, outline, line = rng.choice(PALETTE), INK, rng.randint(2, 5)
    kind = rng.randrange(4)
    if kind == 0:
        draw.ellipse(box, fill=fill, outline=outline, width=line)
    elif kind == 1:
        draw.rectangle(box, fill=fill, outline=outline, width=line)
    elif kind == 2:
        sides = rng.randint(3, 8)
        points = [(x + rng.randint(0, w), y + rng.randint(0, h)) for _ in range(sides)]
        draw.polygon(points, fill=fill, outline=outline, width=line)
    else:  # a comic burst: a star with many sharp corners
        spikes, outer = rng.randint(6, 12), max(w, h) // 2
        turn = rng.random() * math.pi
        star = [
            (
                x + (outer if i % 2 == 0 else outer // 2) * math.cos(turn + i * math.pi / spikes),
                y + (outer if i % 2 == 0 else outer // 2) * math.sin(turn + i * math.pi / spikes),
            )
            for i in range(2 * spikes)
        ]
        draw.polygon(star, fill=fill, outline=outline, width=line)


def _word(rng: random.Random, draw: ImageDraw.ImageDraw, size: Size) -> None:
    width, height = size
    font = ImageFont.load_default(size=rng.randint(28, 64))
    x, y = rng.randrange(width * 3 // 4), rng.randrange(height * 3 // 4)
    draw.text(
        (x, y),
        rng.choice(WORDS),
        font=font,
        fill=rng.choice(PALETTE),
        stroke_width=3,
        stroke_fill=INK,
    )


def _encode(image: Image.Image, fmt: ImageFormat) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=fmt, **({"quality": 90} if fmt == "JPEG" else {}))
    return buffer.getvalue()
