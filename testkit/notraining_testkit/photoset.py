"""A recognition test set of real photographs: arts from Debian's wallpaper packages,
store scenes made from them, built deterministically on demand and cached.

Generated posters (artgen) are easy: sharp, high-contrast, full of corners. Real
photographs have soft focus, sky, foliage and repetitive texture, which is what
customers print. The photographs come from Debian main packages (free licences, see
each package's copyright file) that ``.ci/run`` installs: lomiri-wallpapers-16.04,
lomiri-wallpapers-20.04, mate-backgrounds and ukui-wallpapers. Large photographs give
two arts (left and right halves) so the package reaches 34 arts; drawings and unused
photographs are the distractor posters that are never enrolled.

    python -m notraining_testkit.photoset [DIR]   # build (or reuse) the set, print DIR

The set is written once into DIR (default ``$NOTRAINING_PHOTOSET_DIR`` or
``~/.cache/notraining/photoset-v2``): ``arts/`` (JPEG and PNG, colour and grey, 400 to
2,048 px), ``scenes/NNN.jpg`` and ``truth.json``. A new SET_VERSION rebuilds it.
"""

from __future__ import annotations

import json
import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import cast

import cv2

from notraining_testkit import photoscenes

SET_VERSION = "photoset-v2"
BACKGROUNDS = Path("/usr/share/backgrounds")
DEBIAN_PACKAGES = (
    "lomiri-wallpapers-16.04",
    "lomiri-wallpapers-20.04",
    "mate-backgrounds",
    "ukui-wallpapers",
)
SCENES = 80
SCENE_SIZES = ((1600, 1200), (1600, 1200), (1280, 960), (2016, 1512), (1200, 1600))

Crop = tuple[float, float, float, float] | None
"""(left, top, right, bottom) as fractions of the photograph, or the whole of it."""
LEFT: Crop = (0.0, 0.0, 0.5, 1.0)
RIGHT: Crop = (0.5, 0.0, 1.0, 1.0)

ARTS: tuple[tuple[str, Crop], ...] = (
    ("Bridge_by_Sander_Klootwijk.jpg", LEFT),
    ("Bridge_by_Sander_Klootwijk.jpg", RIGHT),
    ("Dragonfly_by_Bolly.jpg", LEFT),
    ("Dragonfly_by_Bolly.jpg", RIGHT),
    ("Kleiber_by_Lukas_Baubkus.jpg", None),
    ("Picture_0B_by_freespace.jpg", None),
    ("Picture_1A_by_freespace.jpg", None),
    ("Wine_by_Jakkub_Mede.jpg", None),
    ("aitzgorri_by_Aitzol_Berasategi.jpg", LEFT),
    ("aitzgorri_by_Aitzol_Berasategi.jpg", RIGHT),
    ("free_by_Peter_Nerlich.jpg", None),
    ("friends_by_Aitzol_Berasategi.jpg", None),
    ("greentock_by_Peter_Nerlich.jpg", None),
    ("life_by_Aitzol_Berasategi.jpg", LEFT),
    ("life_by_Aitzol_Berasategi.jpg", RIGHT),
    ("picosdeeuropa_by_Aitzol_Berasategi.jpg", LEFT),
    ("picosdeeuropa_by_Aitzol_Berasategi.jpg", RIGHT),
    ("seeding_by_Clements_Engelhardt.jpg", LEFT),
    ("seeding_by_Clements_Engelhardt.jpg", RIGHT),
    ("sunset_by_Aitzol_Berasategi.jpg", LEFT),
    ("sunset_by_Aitzol_Berasategi.jpg", RIGHT),
    ("Infinite-Sea_by_Aury88.jpg", None),
    ("mate/nature/Aqua.jpg", None),
    ("mate/nature/Blinds.jpg", None),
    ("mate/nature/Dune.jpg", None),
    ("mate/nature/FreshFlower.jpg", None),
    ("mate/nature/Garden.jpg", None),
    ("mate/nature/GreenMeadow.jpg", None),
    ("mate/nature/LadyBird.jpg", None),
    ("mate/nature/RainDrops.jpg", None),
    ("mate/nature/Storm.jpg", None),
    ("mate/nature/TwoWings.jpg", None),
    ("mate/nature/Wood.jpg", None),
    ("mate/nature/YellowFlower.jpg", None),
)
"""The enrolled arts: 26 photographs, eight of them split in two (halves of a large
photograph share nothing but their colours, so they are two arts)."""

DISTRACTORS: tuple[str, ...] = (
    "mate/abstract/Elephants.jpg",
    "analogpattern_by_Peter_Nerlich.jpg",
    "umang_by_Abhishek_Mudgal.jpg",
    "Fossa_by_Jasper_Roks.jpg",
    "Painting-Colors_by__herobrine7gamer.jpg",
    "calla.png",
    "goldfish.png",
    "string.jpg",
    "2004default.jpg",
    "the-mouse.jpg",
    "rhythm.jpg",
    "firstgeneration.jpg",
)
"""Posters on the shelf that are not in the package: a detection of them is an error."""

ART_SIDES = (2048, 1600, 1200, 1024, 800, 640, 480, 400)
"""Long sides the arts are saved at, cycled: customers send anything from a thumbnail
to a print master."""


class PhotosMissingError(RuntimeError):
    """The Debian wallpaper packages are not installed; ``str()`` says how to install them."""


@dataclass(frozen=True)
class PhotoSet:
    """A built set: the art files (enrollment order), scene files and their truth."""

    directory: Path
    arts: list[Path]
    scenes: list[Path]
    truth: list[list[tuple[int, photoscenes.Corners]]]


def default_dir() -> Path:
    """Where the set is cached unless a directory is given."""
    configured = os.environ.get("NOTRAINING_PHOTOSET_DIR")
    if configured:
        return Path(configured)
    return Path.home() / ".cache" / "notraining" / SET_VERSION


def available() -> bool:
    """Whether every source photograph is installed."""
    return all((BACKGROUNDS / name).is_file() for name in _sources())


def _sources() -> list[str]:
    return sorted({name for name, _ in ARTS} | set(DISTRACTORS))


def ensure(directory: Path | None = None, scenes: int = SCENES) -> PhotoSet:
    """The set in ``directory``, built first if it is not there yet."""
    folder = directory or default_dir()
    truth_file = folder / "truth.json"
    if not truth_file.exists():
        _build(folder, scenes)
    data = json.loads(truth_file.read_text(encoding="utf-8"))
    truth = [[(int(i), _corners(c)) for i, c in scene["truth"]] for scene in data["scenes"]]
    return PhotoSet(
        folder,
        [folder / name for name in data["arts"]],
        [folder / scene["photo"] for scene in data["scenes"]],
        truth,
    )


def _corners(raw: list[list[float]]) -> photoscenes.Corners:
    return tuple((float(x), float(y)) for x, y in raw)


def _build(folder: Path, scenes: int) -> None:
    missing = [name for name in _sources() if not (BACKGROUNDS / name).is_file()]
    if missing:
        raise PhotosMissingError(
            f"{len(missing)} photographs of the real-photo set are missing (first: "
            f"{BACKGROUNDS / missing[0]}); install them: apt-get install "
            + " ".join(DEBIAN_PACKAGES)
        )
    (folder / "arts").mkdir(parents=True, exist_ok=True)
    (folder / "scenes").mkdir(parents=True, exist_ok=True)
    art_names: list[str] = []
    art_images: list[photoscenes.Image] = []
    for number, (source, crop) in enumerate(ARTS):
        image = _prepare(_read(source), crop, ART_SIDES[number % len(ART_SIDES)])
        grey = number % 9 == 4
        suffix = ".png" if number % 4 == 3 else ".jpg"
        name = f"arts/{number:02d}_{Path(source).stem.split('_')[0]}{suffix}"
        saved = cv2.cvtColor(image, cv2.COLOR_BGR2GRAY) if grey else image
        params = [cv2.IMWRITE_JPEG_QUALITY, 92] if suffix == ".jpg" else []
        cv2.imwrite(str(folder / name), saved, params)
        art_names.append(name)
        # Scenes show the art as saved (grey stays grey), at its saved resolution.
        shown = cv2.cvtColor(saved, cv2.COLOR_GRAY2BGR) if grey else image
        art_images.append(cast(photoscenes.Image, shown))
    distractors = [_prepare(_read(name), None, 1200) for name in DISTRACTORS]
    entries = []
    for seed in range(scenes):
        size = SCENE_SIZES[seed % len(SCENE_SIZES)]
        scene = photoscenes.make_photo_scene(art_images, distractors, seed, size=size)
        photo = f"scenes/{seed:03d}.jpg"
        (folder / photo).write_bytes(scene.photo)
        entries.append({"photo": photo, "truth": [[i, c] for i, c in scene.truth]})
    partial = folder / "truth.json.partial"
    partial.write_text(json.dumps({"arts": art_names, "scenes": entries}), encoding="utf-8")
    partial.replace(folder / "truth.json")


def _read(name: str) -> photoscenes.Image:
    image = cv2.imread(str(BACKGROUNDS / name), cv2.IMREAD_COLOR)
    if image is None:
        raise PhotosMissingError(f"{BACKGROUNDS / name} cannot be read; reinstall its package")
    return cast(photoscenes.Image, image)


def _prepare(image: photoscenes.Image, crop: Crop, long_side: int) -> photoscenes.Image:
    """The crop of ``image``, scaled down so its long side is at most ``long_side``."""
    height, width = image.shape[:2]
    if crop is not None:
        left, top, right, bottom = crop
        image = image[
            int(top * height) : int(bottom * height), int(left * width) : int(right * width)
        ]
        height, width = image.shape[:2]
    scale = min(1.0, long_side / max(height, width))
    size = (round(width * scale), round(height * scale))
    return cast(photoscenes.Image, cv2.resize(image, size, interpolation=cv2.INTER_AREA))


def main(argv: list[str]) -> int:
    """Build the set (or find it built) and print where it is."""
    folder = Path(argv[0]) if argv else None
    try:
        built = ensure(folder)
    except PhotosMissingError as exc:
        sys.stderr.write(f"{exc}\n")
        return 1
    print(f"{built.directory}: {len(built.arts)} arts, {len(built.scenes)} scenes")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
