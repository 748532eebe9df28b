"""``notraining-agent match``: JSON detections per photo, and the drawn picture."""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import cv2
import pytest
from notraining_agent.cli import match as match_cli
from notraining_agent.processors.keypoints.options import KeypointsOptions
from notraining_agent.processors.keypoints.stages import index_from_images
from notraining_testkit.emulators import artgen
from notraining_testkit.scenes import Scene, make_scene

ARTS = [artgen.generate_art(seed) for seed in range(5)]
NAMES = [f"art_{i}.png" for i in range(len(ARTS))]


@pytest.fixture(scope="module")
def index_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("index")
    index_from_images(dict(zip(NAMES, ARTS, strict=True)), KeypointsOptions()).save(folder)
    return folder


def _parse(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="notraining-agent")
    match_cli.add_parser(parser.add_subparsers(dest="command"))
    return parser.parse_args(argv)


def _run(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, dict[str, Any], str]:
    code = match_cli.run(_parse(argv))
    captured = capsys.readouterr()
    return code, json.loads(captured.out) if captured.out else {}, captured.err


def _scene(tmp_path: Path, seed: int, name: str = "photo.jpg") -> tuple[Path, Scene]:
    scene = make_scene(ARTS, seed, count=2, size=(1280, 960))
    path = tmp_path / name
    path.write_bytes(scene.photo)
    return path, scene


def test_parser_takes_index_photos_and_draw() -> None:
    """match --index DIR PHOTO... [--draw OUT.png] parses into paths."""
    args = _parse(["match", "--index", "idx", "a.jpg", "b.jpg", "--draw", "out.png"])
    assert args.command == "match"
    assert args.index == Path("idx")
    assert args.photos == [Path("a.jpg"), Path("b.jpg")]
    assert args.draw == Path("out.png")
    with pytest.raises(SystemExit):
        _parse(["match", "a.jpg"])  # --index is required


def test_reports_each_detected_art_with_corners(
    index_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The JSON names the arts in the photo with inliers, confidence and four corners."""
    photo, scene = _scene(tmp_path, 3)
    code, report, _ = _run(["match", "--index", str(index_dir), str(photo)], capsys)
    assert code == 0
    assert report["features"] == "sift"
    assert report["arts"] == 5
    (entry,) = report["photos"]
    assert entry["photo"] == str(photo)
    assert (entry["width"], entry["height"]) == (1280, 960)
    found = {d["art"]: d for d in entry["detections"]}
    assert set(found) == {NAMES[i] for i, _ in scene.truth}
    for art, corners in scene.truth:
        detection = found[NAMES[art]]
        assert detection["inliers"] >= 12
        assert 0.5 <= detection["confidence"] <= 1.0
        assert len(detection["corners"]) == 4
        for (x, y), (tx, ty) in zip(detection["corners"], corners, strict=True):
            assert abs(x - tx) < 15
            assert abs(y - ty) < 15
    assert "drawn" not in entry


def test_draw_writes_the_outlined_picture(
    index_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """--draw OUT.png writes a picture the size of the photo and says where."""
    photo, _ = _scene(tmp_path, 4)
    out = tmp_path / "out.png"
    code, report, _ = _run(
        ["match", "--index", str(index_dir), str(photo), "--draw", str(out)], capsys
    )
    assert code == 0
    assert report["photos"][0]["drawn"] == str(out)
    drawn = cv2.imread(str(out))
    assert drawn is not None
    assert drawn.shape == (960, 1280, 3)


def test_several_photos_get_numbered_drawings_and_a_bad_one_exits_1(
    index_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Each photo has its entry; an unreadable one gets an error and the exit code is 1."""
    first, _ = _scene(tmp_path, 5, "one.jpg")
    junk = tmp_path / "junk.jpg"
    junk.write_bytes(b"not a photo")
    missing = tmp_path / "missing.jpg"
    argv = ["match", "--index", str(index_dir), str(first), str(junk), str(missing)]
    code, report, _ = _run([*argv, "--draw", str(tmp_path / "out.png")], capsys)
    assert code == 1
    ok, bad, gone = report["photos"]
    assert ok["drawn"] == str(tmp_path / "out-1.png")
    assert (tmp_path / "out-1.png").exists()
    assert "cannot read the photo" in bad["error"]
    assert "cannot read the photo" in gone["error"]


def test_missing_index_exits_2_with_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """No index.npz in DIR: exit 2, nothing on stdout, one line on stderr saying what to do."""
    code, report, err = _run(["match", "--index", str(tmp_path), "photo.jpg"], capsys)
    assert code == 2
    assert report == {}
    assert "enroll" in err
    assert err.count("\n") == 1


def test_works_without_vision_until_run() -> None:
    """Registering the command needs no cv2; running it says how to install the extra."""
    script = (
        "import sys, argparse; sys.modules['cv2'] = None\n"
        "from notraining_agent.cli import match as match_cli\n"
        "p = argparse.ArgumentParser(); match_cli.add_parser(p.add_subparsers(dest='c'))\n"
        "sys.exit(match_cli.run(p.parse_args(['match', '--index', '.', 'x.jpg'])))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=False, timeout=60
    )
    assert done.returncode == 2
    assert "pip install 'notraining-agent[vision]'" in done.stderr
