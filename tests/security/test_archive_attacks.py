"""Archive attacks (issue 3, item 6): each hostile zip_art fails its job, on the REAL agent.

One agent process per attack, all at once (a VM takes one job): each is posted a job
whose ``zip_art`` is one hostile zip served by the art emulator, and the end report
must say ``failed`` with an error naming what was refused, while nothing lands
outside the job folder; the nested 42.zip-style bomb is refused at its first inner
zip, never opened. Disk use *during* extraction is measured in-process, write by write.
"""

from __future__ import annotations

import stat
import zipfile
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import IO

import pytest
import pytest_asyncio
from notraining_agent.errors import InputRefusedError
from notraining_agent.job import archive, unpack
from notraining_testkit.emulators.suite import start_world

from tests.security import zips
from tests.security.harness import Ended, files_under, run_agents

ON_AGENTS = pytest.mark.asyncio(loop_scope="module")
"""Tests reading the module's batch of real agent processes share its event loop."""


MAX_DOWNLOAD_BYTES = 16 * 1024 * 1024
"""The agents' max_download_bytes, which also bounds what one zip may inflate to."""


@dataclass(frozen=True)
class Attack:
    """One hostile zip_art: how to build it (given the test's base folder) and the error."""

    name: str
    build: Callable[[Path], bytes]
    error: str
    path: str = ""  # the art server path; empty: /attack/<name>.zip


ATTACKS = [
    Attack("traversal", lambda _: zips.traversal(depth=6), "points outside the job folder"),
    Attack("absolute", lambda base: zips.absolute(str(base / "absolute.txt")), "absolute path"),
    Attack("symlink", lambda base: zips.symlink(str(base / "secret.txt")), "symbolic link"),
    Attack("hardlink", lambda _: zips.hardlink("/etc/passwd"), "link"),
    Attack("device", lambda _: zips.device(), "character device"),
    Attack("named-twice", lambda _: zips.named_twice(), "appears more than once"),
    Attack("high-ratio", lambda _: zips.high_ratio(), "inflates more than 100 times"),
    Attack("overlapping", lambda _: zips.overlapping(), "overlap (a zip bomb trick)"),
    Attack("too-many-entries", lambda _: zips.many_entries(10_001), "more than 10000 entries"),
    Attack("deep-folders", lambda _: zips.deep_folders(), "more than 10000 folders"),
    Attack("bzip2-bomb", lambda _: zips.bzip2_bomb(), "bzip2 compression"),
    Attack("total-size", lambda _: zips.total_over(MAX_DOWNLOAD_BYTES), "inflates past"),
    Attack("truncated", lambda _: zips.truncated(), "truncated"),
    Attack("corrupt", lambda _: zips.corrupt(), "corrupt"),
    Attack("html", lambda _: zips.HTML, "HTML/XML page, not a zip"),
    Attack("nested-42", lambda _: zips.nested(), "is itself an archive"),
    # The art emulator's /lie route announces 1000 bytes, then sends the whole zip.
    Attack("lying-length", lambda _: b"", "truncated", path="/lie/package.zip?length=1000"),
]


def _ntd(name: str) -> str:
    return f"zip-{name}"


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def ended(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[dict[str, Ended]]:
    """Every attack's job, each run to its end by its own real agent process."""
    base = tmp_path_factory.mktemp("archive-attacks")
    world = await start_world(attributes={"notraining-self-stop": "none"}, shutdown_grace="0s")
    try:
        jobs = []
        for attack in ATTACKS:
            path = attack.path or f"/attack/{attack.name}.zip"
            if not attack.path:
                world.art.add_file(path, attack.build(base))
            jobs.append(
                {"ntd_transaction_id": _ntd(attack.name), "zip_art": world.url("art") + path}
            )
        yield await run_agents(
            world, base / "agents", jobs, max_download_bytes=str(MAX_DOWNLOAD_BYTES)
        )
    finally:
        await world.close()


def _outside_job(outcome: Ended) -> set[Path]:
    """What the agent wrote outside the job folder, its own bookkeeping aside."""
    root = outcome.state_dir.parent
    own = {root / "fake-bin", outcome.state_dir, outcome.state_dir / "jobs", outcome.job_dir}
    return {
        path
        for path in files_under(root) - files_under(outcome.job_dir) - own
        if path.parent not in (root / "fake-bin", outcome.state_dir)  # state.json, systemctl
        and not (outcome.report["status"] == "done" and "results" in path.parts)
    }


@pytest.mark.integration
@ON_AGENTS
@pytest.mark.parametrize("attack", ATTACKS, ids=[a.name for a in ATTACKS])
async def test_hostile_zip_fails_the_job_naming_what_was_refused(
    ended: dict[str, Ended], attack: Attack
) -> None:
    """The job was accepted, then ended failed with an error naming the refused input."""
    outcome = ended[_ntd(attack.name)]
    assert outcome.answer.status == 200
    assert outcome.report["status"] == "failed", outcome.report
    error = outcome.report["error"]
    assert error.startswith("zip_art "), error
    assert attack.error in error, error
    assert outcome.report["arts"] == 0
    assert outcome.exit_code == 0


@pytest.mark.integration
@ON_AGENTS
@pytest.mark.parametrize("attack", ATTACKS, ids=[a.name for a in ATTACKS])
async def test_hostile_zip_writes_nothing_outside_the_job_folder(
    ended: dict[str, Ended], attack: Attack
) -> None:
    """No file, folder or link appears outside the job folder; the extraction folder is gone."""
    outcome = ended[_ntd(attack.name)]
    assert _outside_job(outcome) == set()
    assert not (outcome.job_dir / "input" / "zip").exists()  # removed whole on refusal
    everything = files_under(outcome.state_dir.parent.parent.parent)
    assert not any(path.is_symlink() for path in everything)
    assert not any(path.name in ("escaped.txt", "absolute.txt") for path in everything)


# --- disk use during extraction, measured write by write ------------------------------------


def _ratio_cap(zip_path: Path) -> int:
    """What one entry may inflate to (the ratio rule), plus the small PNG beside it."""
    with zipfile.ZipFile(zip_path) as opened:
        entry = opened.getinfo("zeros.png")
    cap = max(archive.DEFAULT_MAX_RATIO * entry.compress_size, unpack.RATIO_FLOOR_BYTES)
    return cap + len(zips.PNG)


@pytest.mark.parametrize(
    ("build", "limit", "bound"),
    [
        (lambda: zips.total_over(4_000_000), 4_000_000, lambda _: 4_000_000),
        (lambda: zips.high_ratio(40 * 1024 * 1024), 64 * 1024 * 1024, _ratio_cap),
    ],
    ids=["many-entries-past-the-total", "one-entry-past-the-ratio"],
)
def test_disk_use_is_bounded_while_extracting(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    build: Callable[[], bytes],
    limit: int,
    bound: Callable[[Path], int],
) -> None:
    """The job folder never holds more than the limit, at any write, not only at the end."""
    zip_path = tmp_path / "bomb.zip"
    zip_path.write_bytes(build())
    dest = tmp_path / "job" / "input" / "zip"
    peak = [0]
    real_write = unpack._write  # both extraction threads write through it

    def measured(out: IO[bytes], chunk: bytes, name: str, info: zipfile.ZipInfo) -> None:
        real_write(out, chunk, name, info)
        out.flush()
        on_disk = sum(p.stat().st_size for p in dest.rglob("*") if p.is_file())
        peak[0] = max(peak[0], on_disk)

    monkeypatch.setattr(unpack, "_write", measured)
    with pytest.raises(InputRefusedError, match="inflates"):
        archive.extract_zip(zip_path, dest, max_total_bytes=limit)
    assert 0 < peak[0] <= bound(zip_path)
    assert not dest.exists()


def test_special_files_are_refused_before_any_byte_is_written(tmp_path: Path) -> None:
    """A device or link after a normal file: refused in the plan, so nothing was written."""
    for data in (zips.device(), zips.symlink("/etc/passwd"), zips.hardlink("/etc/passwd")):
        zip_path = tmp_path / "special.zip"
        zip_path.write_bytes(data)
        dest = tmp_path / "out"
        with pytest.raises(InputRefusedError, match=r"link|device"):
            archive.extract_zip(zip_path, dest, max_total_bytes=10**6)
        assert not dest.exists()
    assert not any(stat.S_ISLNK(p.lstat().st_mode) for p in tmp_path.rglob("*"))
