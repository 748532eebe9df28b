"""Writes (or checks) the exports of uv.lock that pip, the wheelhouse and Terraform read.

uv.lock is the one lock. These requirements files are views of it, with hashes, one per
set of the agent's extras: the wheelhouse build downloads from them, and the boot recipe's
index install embeds them. `make lock` rewrites them; the release tests run `--check`.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
from itertools import combinations
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
REQUIREMENTS = REPO / "requirements"
EXTRAS = ("gcs", "vision")
CHECKOV_ARGS = ("--python-version", "3.11", "--python-platform", "x86_64-manylinux_2_28")


def combos(extras: tuple[str, ...] = EXTRAS) -> list[tuple[str, ...]]:
    """Every subset of the extras, sorted, the empty one first."""
    return [c for n in range(len(extras) + 1) for c in combinations(sorted(extras), n)]


def runtime_file(extras: tuple[str, ...]) -> Path:
    """requirements/agent.txt, agent-gcs.txt, agent-gcs-vision.txt, ..."""
    return REQUIREMENTS / ("-".join(("agent", *sorted(extras))) + ".txt")


def export(uv: str, extras: tuple[str, ...]) -> str:
    """The locked runtime (no dev tools, not the agent itself) for these extras, hashed."""
    argv = [uv, "export", "--frozen", "--package", "notraining-agent", "--no-dev"]
    argv += ["--no-emit-project", "--format", "requirements-txt", "--no-header", "--no-annotate"]
    for extra in extras:
        argv += ["--extra", extra]
    body = subprocess.run(argv, cwd=REPO, check=True, capture_output=True, text=True).stdout
    return (
        f"# The agent's runtime{' with ' + ', '.join(extras) if extras else ''}, from uv.lock.\n"
        "# Written by `make lock` (tools/lockfiles.py); do not edit.\n" + body
    )


def installer(uv: str) -> str:
    """uv's own pinned wheel, hashed: make bootstraps with it and it travels in the wheelhouse."""
    argv = [uv, "export", "--frozen", "--only-group", "installer", "--no-emit-project"]
    argv += ["--format", "requirements-txt", "--no-header", "--no-annotate"]
    body = subprocess.run(argv, cwd=REPO, check=True, capture_output=True, text=True).stdout
    return "# The installer, uv, from uv.lock. Written by `make lock`; do not edit.\n" + body


def expected(uv: str) -> dict[Path, str]:
    """Every export and the text uv.lock gives it now."""
    files = {runtime_file(c): export(uv, c) for c in combos()}
    files[REQUIREMENTS / "installer.txt"] = installer(uv)
    return files


def compile_checkov(uv: str, *, upgrade: bool) -> None:
    """checkov's own lock: resolved apart from the project, so its hcl2 never meets ours."""
    argv = [uv, "pip", "compile", "requirements/checkov.in", "--generate-hashes", "--quiet"]
    argv += [*CHECKOV_ARGS, "--no-header", "-o", "requirements/checkov.txt"]
    if upgrade:
        argv.append("--upgrade")
    subprocess.run(argv, cwd=REPO, check=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--uv", default="uv", help="the uv executable")
    parser.add_argument("--check", action="store_true", help="fail if an export is stale")
    parser.add_argument("--upgrade", action="store_true", help="re-resolve checkov to its newest")
    args = parser.parse_args()
    stale = []
    for path, text in expected(args.uv).items():
        if args.check:
            if not path.is_file() or path.read_text(encoding="utf-8") != text:
                stale.append(path.relative_to(REPO))
        else:
            path.write_text(text, encoding="utf-8")
    if stale:
        names = ", ".join(str(p) for p in stale)
        print(f"{names} do not match uv.lock: run `make lock`", file=sys.stderr)
        return 1
    if not args.check:
        compile_checkov(args.uv, upgrade=bool(args.upgrade))
    return 0


if __name__ == "__main__":
    sys.exit(main())
