"""How long the VM's install takes: a fresh venv, then the agent from a local wheelhouse.

Targets (issue 10), on this machine, venv creation included: base <= 5 s, vision <= 12 s.
Times both installers from the same wheelhouse, with no index and no warm cache, as the
boot recipe runs them:

- pip: `python -m venv` (ensurepip puts pip in it), then `pip install --no-index
  --find-links wheelhouse --require-hashes -r requirements[-vision].txt --no-cache-dir`;
- uv: uv's binary out of its wheel (the recipe does this on every boot), `uv venv`, then
  `uv pip install --offline --no-index ... --require-hashes` with an empty cache.

The wheelhouse is built once with tools/dist.py for this Python (EXTRAS=vision), or
given with --archive. Prints a Markdown table, writes it to bench/RESULTS_install.md and
replaces this benchmark's section of bench/RESULTS.md (the rest is kept).

    .venv/bin/python bench/install.py [--runs 5] [--archive dist/...-wheelhouse-vision.tar]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
import zipfile
from collections.abc import Callable
from pathlib import Path

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent
PYTHON = Path(sys.base_prefix) / "bin" / f"python{sys.version_info.major}.{sys.version_info.minor}"
GOALS = {"base": 5.0, "vision": 12.0}
SECTION = "## Install from the wheelhouse (`bench/install.py"


def quiet_env(cache: Path) -> dict[str, str]:
    """No pip or uv configuration of this machine (find-links, indexes): the wheelhouse only."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PIP_", "UV_"))}
    env.update(PIP_CONFIG_FILE=os.devnull, PIP_DISABLE_PIP_VERSION_CHECK="1")
    env.update(UV_NO_CONFIG="1", UV_PYTHON_DOWNLOADS="never", UV_CACHE_DIR=str(cache))
    return env


def call(argv: list[str], env: dict[str, str]) -> None:
    done = subprocess.run(argv, env=env, capture_output=True, text=True, check=False)
    if done.returncode:
        raise RuntimeError(f"{' '.join(argv[:3])} failed:\n{done.stdout}{done.stderr}")


def with_pip(house: Path, requirements: Path, work: Path) -> None:
    env = quiet_env(work / "cache")
    venv = work / "venv"
    call([str(PYTHON), "-m", "venv", str(venv)], env)
    argv = [str(venv / "bin" / "python"), "-m", "pip", "install", "--quiet", "--isolated"]
    argv += ["--no-index", "--find-links", str(house), "--require-hashes", "--no-cache-dir"]
    call([*argv, "-r", str(requirements)], env)


def with_uv(house: Path, requirements: Path, work: Path) -> None:
    env = quiet_env(work / "cache")
    (wheel,) = house.glob("uv-*.whl")
    with zipfile.ZipFile(wheel) as whl:
        (member,) = (n for n in whl.namelist() if n.endswith(".data/scripts/uv"))
        uv = Path(whl.extract(member, work / "uv"))
    uv.chmod(0o755)
    venv = work / "venv"
    call([str(uv), "venv", "--quiet", "--python", str(PYTHON), str(venv)], env)
    argv = [str(uv), "pip", "install", "--quiet", "--python", str(venv / "bin" / "python")]
    argv += ["--offline", "--no-index", "--find-links", str(house), "--require-hashes"]
    call([*argv, "-r", str(requirements)], env)


def du_mib(path: Path) -> float:
    return sum(p.lstat().st_size for p in path.rglob("*") if not p.is_symlink()) / 2**20


def timed(
    install: Callable[[Path, Path, Path], None], house: Path, req: Path
) -> tuple[float, float]:
    """Seconds for one install into a fresh venv, and the venv's size in MiB."""
    with tempfile.TemporaryDirectory(dir=REPO / "bench" / ".cache") as tmp:
        work = Path(tmp)
        started = time.perf_counter()
        install(house, req, work)
        seconds = time.perf_counter() - started
        version = subprocess.run(
            [str(work / "venv" / "bin" / "notraining-agent"), "--version"],
            capture_output=True,
            text=True,
            check=True,
        )
        if not version.stdout.startswith("notraining-agent "):
            raise RuntimeError(f"the installed agent answered {version.stdout!r}")
        return seconds, du_mib(work / "venv")


def wheelhouse(archive: Path | None, into: Path) -> Path:
    """The unpacked wheelhouse: the given archive, or one built now for this Python."""
    if archive is None:
        out = BENCH / ".cache" / "dist"
        python = f"{sys.version_info.major}.{sys.version_info.minor}"
        uv = str(Path(sys.executable).with_name("uv"))
        argv = [sys.executable, str(REPO / "tools" / "dist.py"), "--uv", uv, "--out", str(out)]
        subprocess.run([*argv, "--extras", "vision", "--pythons", python], check=True)
        (archive,) = out.glob("notraining_agent-*-wheelhouse-vision.tar")
    with tarfile.open(archive) as tar:
        tar.extractall(into, filter="data")
    return into / "wheelhouse"


def table(rows: list[tuple[str, str, list[float], float, int]]) -> str:
    lines = [
        "| target | installer | median | min | max | venv | wheels | goal |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for target, installer, seconds, size, wheels in rows:
        median = statistics.median(seconds)
        goal = GOALS[target]
        verdict = f"≤ {goal:.0f} s: {'met' if median <= goal else 'missed'}"
        lines.append(
            f"| {target} | {installer} | {median:.2f} s | {min(seconds):.2f} s "
            f"| {max(seconds):.2f} s | {size:.0f} MiB | {wheels} | {verdict} |"
        )
    return "\n".join(lines)


def record(section: str) -> None:
    """Replace this benchmark's section of RESULTS.md, or append it; keep everything else."""
    results = BENCH / "RESULTS.md"
    text = results.read_text(encoding="utf-8")
    start = text.find(SECTION)
    if start >= 0:
        end = text.find("\n## ", start + 1)
        text = text[:start] + section + (text[end + 1 :] if end >= 0 else "")
    else:
        text = text.rstrip("\n") + "\n\n" + section
    results.write_text(text, encoding="utf-8")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--archive", type=Path, help="a wheelhouse built with EXTRAS=vision")
    args = parser.parse_args()
    (BENCH / ".cache").mkdir(exist_ok=True)
    with tempfile.TemporaryDirectory(dir=BENCH / ".cache") as tmp:
        house = wheelhouse(args.archive, Path(tmp))
        rows = []
        for target, name in (("base", "requirements.txt"), ("vision", "requirements-vision.txt")):
            requirements = house / name
            wheels = sum(1 for ln in requirements.read_text().splitlines() if "==" in ln)
            for installer, install in (("pip", with_pip), ("uv", with_uv)):
                runs = [timed(install, house, requirements) for _ in range(args.runs)]
                seconds = [s for s, _ in runs]
                rows.append((target, installer, seconds, runs[-1][1], wheels))
                print(f"{target:6} {installer:3} median {statistics.median(seconds):.2f} s")
    body = table(rows)
    load = Path("/proc/loadavg").read_text().split()[:3]
    print(body)
    (BENCH / "RESULTS_install.md").write_text(body + "\n", encoding="utf-8")
    record(
        f"{SECTION} --runs {args.runs}`)\n\n"
        f"A fresh venv (creation included) filled from a local wheelhouse with no index and no\n"
        f"warm cache, as the boot recipe does; CPython {PYTHON.name[6:]}, the machine shared with\n"
        f"other work. `wheels` counts the pinned requirements (the agent included). pip: `venv`\n"
        f"with ensurepip, then `pip install --no-index --require-hashes`. uv: its binary out of\n"
        f"its wheel, `uv venv`, `uv pip install --offline --no-index --require-hashes`.\n"
        f"Load average at the end: {' '.join(load)} on {os.cpu_count()} cores.\n\n"
        f"{body}\n"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
