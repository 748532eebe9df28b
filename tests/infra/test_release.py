"""The release `make dist` builds: a wheel holding the product alone, and a wheelhouse that
installs the agent into a fresh venv with no index at all, exactly as the boot recipe does,
and refuses any byte it has no hash for."""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import sys
import tarfile
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.infra.tools import REPO, run

pytestmark = [pytest.mark.infra, pytest.mark.slow]

UV = Path(sys.executable).with_name("uv")
PYTHON = f"{sys.version_info.major}.{sys.version_info.minor}"
FORBIDDEN = re.compile(r"(^|[/_])(emulators?|fakes?|tests?|demo|conftest|testkit)([/_.]|$)")


@dataclass(frozen=True)
class Release:
    wheel: Path
    archive: Path
    sums: Path


def clean_env(tmp: Path) -> dict[str, str]:
    """No pip or uv settings from the machine: only the wheelhouse may be used."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PIP_", "UV_"))}
    env.update(UV_NO_CONFIG="1", UV_PYTHON_DOWNLOADS="never", UV_CACHE_DIR=str(tmp / "cache"))
    return env


@pytest.fixture(scope="module")
def release(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Release]:
    """tools/dist.py (what `make dist` runs) for this Python only, to keep the test short."""
    if not UV.exists():
        pytest.fail(f"{UV} is missing: run `make venv`")
    out = tmp_path_factory.mktemp("dist")
    argv = [sys.executable, "tools/dist.py", "--uv", str(UV), "--out", str(out)]
    built = run([*argv, "--pythons", PYTHON], cwd=REPO, timeout=600)
    assert built.returncode == 0, built.stdout + built.stderr
    (wheel,) = out.glob("notraining_agent-*-py3-none-any.whl")
    (archive,) = out.glob("notraining_agent-*-wheelhouse.tar")
    yield Release(wheel, archive, out / "SHA256SUMS")


def unpack(release: Release, into: Path) -> tuple[Path, Path]:
    """The recipe's first steps: untar, then take uv's binary out of its wheel."""
    with tarfile.open(release.archive) as tar:
        tar.extractall(into, filter="data")
    house = into / "wheelhouse"
    (uv_wheel,) = house.glob("uv-*.whl")
    with zipfile.ZipFile(uv_wheel) as whl:
        (member,) = (n for n in whl.namelist() if n.endswith(".data/scripts/uv"))
        uv = Path(whl.extract(member, into / "uv"))
    uv.chmod(0o755)
    return house, uv


def install(uv: Path, house: Path, venv: Path, env: dict[str, str]) -> str:
    """The recipe's install: a fresh venv, then the wheelhouse's hashed requirements, offline."""
    made = run([str(uv), "venv", "--quiet", "--python", sys.executable, str(venv)], env=env)
    assert made.returncode == 0, made.stderr
    argv = [str(uv), "pip", "install", "--python", str(venv / "bin" / "python"), "--offline"]
    argv += ["--no-index", "--find-links", str(house), "--require-hashes"]
    installed = run([*argv, "-r", str(house / "requirements.txt")], env=env, timeout=300)
    return installed.stdout + installed.stderr if installed.returncode else ""


def test_wheelhouse_installs_the_agent_with_no_index(release: Release, tmp_path: Path) -> None:
    """A fresh venv gets the agent and every locked dependency from the wheelhouse alone."""
    house, uv = unpack(release, tmp_path)
    env = clean_env(tmp_path)
    assert install(uv, house, tmp_path / "venv", env) == ""
    version = run([str(tmp_path / "venv" / "bin" / "notraining-agent"), "--version"], env=env)
    assert version.returncode == 0, version.stderr
    assert version.stdout.strip() == f"notraining-agent {release.wheel.name.split('-')[1]}"


def test_a_wheelhouse_with_one_byte_changed_is_refused(release: Release, tmp_path: Path) -> None:
    """One flipped byte fails the archive's SHA256SUMS line, and one flipped byte in a wheel
    inside it fails the installer's hash check: nothing is installed."""
    house, uv = unpack(release, tmp_path)
    (victim,) = house.glob("yarl-*.whl")
    data = bytearray(victim.read_bytes())
    # Byte 10 is the first entry's modification time: the zip stays valid (no CRC covers
    # it), so only the lock's hash can tell.
    data[10] ^= 0x01
    victim.write_bytes(bytes(data))
    with zipfile.ZipFile(victim) as whl:
        assert whl.testzip() is None
    refused = install(uv, house, tmp_path / "venv", clean_env(tmp_path))
    assert "hash" in refused.lower(), refused
    assert not (tmp_path / "venv" / "bin" / "notraining-agent").exists()

    changed = tmp_path / release.archive.name
    shutil.copy2(release.archive, changed)
    with changed.open("r+b") as f:
        f.seek(changed.stat().st_size // 2)
        byte = f.read(1)
        f.seek(-1, os.SEEK_CUR)
        f.write(bytes([byte[0] ^ 0x01]))
    checked = run(["sha256sum", "--check", "--strict", str(release.sums)], cwd=tmp_path)
    assert checked.returncode != 0
    assert f"{changed.name}: FAILED" in checked.stdout


def test_sha256sums_name_the_wheel_and_the_wheelhouse(release: Release) -> None:
    """SHA256SUMS holds one sha256sum line for each file Terraform is given."""
    lines = release.sums.read_text().splitlines()
    assert lines == [
        f"{hashlib.sha256(p.read_bytes()).hexdigest()}  {p.name}"
        for p in (release.wheel, release.archive)
    ]


def test_wheel_holds_the_product_alone(release: Release) -> None:
    """The wheel's only top-level package is notraining_agent, with no emulator, fake, test or
    demo module anywhere in it."""
    with zipfile.ZipFile(release.wheel) as whl:
        names = whl.namelist()
    tops = {n.split("/", 1)[0] for n in names}
    version = release.wheel.name.split("-")[1]
    assert tops == {"notraining_agent", f"notraining_agent-{version}.dist-info"}
    modules = [n for n in names if n.endswith(".py")]
    assert "notraining_agent/cli/main.py" in modules
    assert [n for n in modules if FORBIDDEN.search(n.lower())] == []


def test_lock_exports_match_uv_lock() -> None:
    """requirements/*.txt are what uv.lock gives now (`make lock` writes them)."""
    checked = run([sys.executable, "tools/lockfiles.py", "--uv", str(UV), "--check"], cwd=REPO)
    assert checked.returncode == 0, checked.stderr
