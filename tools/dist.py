"""Builds the release Terraform hands to every VM: the agent's wheel, a wheelhouse, SHA256SUMS.

The wheelhouse is one tar archive (`wheelhouse/` inside) holding every wheel the locked
runtime needs on Linux x86-64 for each Python the images have, the agent's own wheel,
uv's wheel (the installer), and one hashed requirements file per set of extras it can
install: `requirements.txt`, `requirements-gcs.txt`, ... The VM installs it with no index:

    uv pip install --offline --no-index --find-links wheelhouse --require-hashes \\
        -r wheelhouse/requirements-gcs.txt

Every wheel comes from the lock's exports under requirements/ and is checked against the
lock's hashes as it is downloaded (pip download --require-hashes).
"""

from __future__ import annotations

import argparse
import hashlib
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

from lockfiles import EXTRAS, REPO, REQUIREMENTS, combos, runtime_file
from packaging.markers import Marker

PYTHONS = ("3.11", "3.12", "3.13")
# Up to the oldest glibc of the images (Debian 12: 2.36; Ubuntu 24.04: 2.39). pip download
# matches --platform tags exactly, so every older manylinux tag is named too.
PLATFORMS = tuple(f"manylinux_2_{minor}_x86_64" for minor in range(36, 4, -1))
PROJECT = "notraining-agent"


def sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def build_wheel(uv: str, out: Path) -> Path:
    """The agent's wheel, built from the source root agent/ alone."""
    with tempfile.TemporaryDirectory() as tmp:
        subprocess.run(
            [uv, "build", "--quiet", "--wheel", "--package", PROJECT, "--out-dir", tmp],
            cwd=REPO,
            check=True,
        )
        (built,) = Path(tmp).glob("notraining_agent-*.whl")
        return Path(shutil.copy2(built, out / built.name))


def for_python(locked: str, python: str) -> str:
    """The entries of a hashed requirements file that apply to CPython `python` on Linux
    x86-64, markers dropped: pip download judges markers by the Python it runs on, not by
    the target, and the lock picks some versions per Python (numpy)."""
    env = {
        "python_version": python,
        "python_full_version": f"{python}.0",
        "implementation_name": "cpython",
        "platform_python_implementation": "CPython",
        "platform_machine": "x86_64",
        "sys_platform": "linux",
        "platform_system": "Linux",
        "os_name": "posix",
    }
    kept: list[str] = []
    keep = False
    for line in locked.splitlines():
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        if line[0].isspace():
            if keep:
                kept.append(line)
            continue
        requirement, _, marker = line.removesuffix("\\").partition(";")
        keep = not marker.strip() or Marker(marker.strip()).evaluate(env)
        if keep:
            kept.append(f"{requirement.strip()} \\")
    return "\n".join(kept) + "\n"


def download(locked: Path, dest: Path, python: str) -> None:
    """Every wheel of a hashed requirements file, for CPython `python` on Linux x86-64,
    each checked against the lock's hashes."""
    abi = "cp" + python.replace(".", "")
    with tempfile.TemporaryDirectory() as tmp:
        requirements = Path(tmp) / "requirements.txt"
        requirements.write_text(for_python(locked.read_text(encoding="utf-8"), python))
        argv = [sys.executable, "-m", "pip", "download", "--quiet", "--no-deps"]
        argv += ["--only-binary=:all:", "--require-hashes", "--dest", str(dest)]
        argv += [f"--platform={tag}" for tag in PLATFORMS]
        argv += ["--implementation", "cp", "--python-version", python]
        argv += ["--abi", abi, "--abi", "abi3", "--abi", "none", "-r", str(requirements)]
        subprocess.run(argv, check=True)


def requirements_text(wheel: Path, extras: tuple[str, ...]) -> str:
    """The agent pinned to its wheel's hash, then the locked runtime for these extras."""
    version = wheel.name.split("-")[1]
    name = f"{PROJECT}[{','.join(extras)}]" if extras else PROJECT
    locked = runtime_file(extras).read_text(encoding="utf-8")
    return f"{name}=={version} \\\n    --hash=sha256:{sha256(wheel)}\n{locked}"


def archive(source: Path, target: Path) -> None:
    """A tar of `source` as `wheelhouse/`: sorted, owned by root, dated 0, so reproducible."""
    with tarfile.open(target, "w", format=tarfile.PAX_FORMAT) as tar:
        folder = tarfile.TarInfo("wheelhouse")
        folder.type, folder.mode = tarfile.DIRTYPE, 0o755
        tar.addfile(folder)
        for path in sorted(source.iterdir()):
            info = tarfile.TarInfo(f"wheelhouse/{path.name}")
            info.size, info.mode = path.stat().st_size, 0o644
            with path.open("rb") as f:
                tar.addfile(info, f)


def build(uv: str, out: Path, extras: tuple[str, ...], pythons: tuple[str, ...]) -> list[Path]:
    out.mkdir(parents=True, exist_ok=True)
    for old in out.glob("notraining_agent-*"):
        old.unlink()
    wheel = build_wheel(uv, out)
    version = wheel.name.split("-")[1]
    with tempfile.TemporaryDirectory() as tmp:
        house = Path(tmp) / "wheelhouse"
        house.mkdir()
        for python in pythons:
            download(runtime_file(extras), house, python)
        download(REQUIREMENTS / "installer.txt", house, pythons[0])
        shutil.copy2(wheel, house / wheel.name)
        for subset in combos(extras):
            name = "-".join(("requirements", *subset)) + ".txt"
            (house / name).write_text(requirements_text(wheel, subset), encoding="utf-8")
        tar = out / "-".join(("notraining_agent", version, "wheelhouse", *extras))
        tar = tar.with_name(tar.name + ".tar")
        archive(house, tar)
    sums = out / "SHA256SUMS"
    sums.write_text("".join(f"{sha256(p)}  {p.name}\n" for p in (wheel, tar)), encoding="utf-8")
    return [wheel, tar, sums]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--uv", default="uv", help="the uv executable")
    parser.add_argument("--out", type=Path, default=REPO / "dist")
    parser.add_argument("--extras", default="", help=f"comma-separated, of {', '.join(EXTRAS)}")
    parser.add_argument("--pythons", default=",".join(PYTHONS), help="CPython versions")
    args = parser.parse_args()
    extras = tuple(sorted({e for e in args.extras.replace(" ", "").split(",") if e}))
    unknown = set(extras) - set(EXTRAS)
    if unknown:
        parser.error(f"unknown extras {sorted(unknown)}: choose from {', '.join(EXTRAS)}")
    pythons = tuple(p for p in args.pythons.split(",") if p)
    for path in build(args.uv, args.out, extras, pythons):
        print(f"{path.stat().st_size:>12,}  {os.path.relpath(path)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
