"""Disk trouble (issue 4, item 6): a state_dir that cannot be written, a disk that fills mid-job.

A full disk is a real one where the OS lets us: ``state_dir`` on a 2 MiB tmpfs
(``mount`` needs root or CAP_SYS_ADMIN; the test is skipped without). Everywhere,
the same write failure is also produced with ``RLIMIT_FSIZE`` set for the agent's
process: writing past the limit fails with EFBIG ("File too large") instead of
ENOSPC, through the very same code path.
"""

from __future__ import annotations

import contextlib
import json
import os
import resource
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from notraining_agent.cli.submit import submit
from notraining_agent.life.states import JobState
from notraining_agent.life.store import STATE_FILE, StateStore
from notraining_testkit.emulators.suite import AgentProcess

from tests.faults.conftest import STEP_TIMEOUT, Scene
from tests.integration.conftest import saturno_token

pytestmark = [pytest.mark.integration]

BIG = "/big.bin"
BIG_BYTES = 3 * 1024 * 1024  # more than the tmpfs holds
LIFE_TIMEOUT = 60.0


@contextlib.contextmanager
def mounted_tmpfs(folder: Path, options: str) -> Iterator[Path]:
    """A tmpfs mounted on ``folder`` for the block; skips the test where mounting is denied."""
    folder.mkdir(parents=True, exist_ok=True)
    mount = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(folder)],
        capture_output=True,
        text=True,
        check=False,
    )
    if mount.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here ({mount.stderr.strip()}); needs root")
    try:
        yield folder
    finally:
        subprocess.run(["umount", "-l", str(folder)], check=False, capture_output=True)


@contextlib.contextmanager
def file_size_limit(limit: int) -> Iterator[None]:
    """Children started in the block may not write files past ``limit`` bytes (EFBIG)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
    resource.setrlimit(resource.RLIMIT_FSIZE, (limit, hard))
    try:
        yield
    finally:
        resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))


async def test_state_dir_below_a_file_exits_2_with_one_line(scene: Scene, tmp_path: Path) -> None:
    """state_dir that cannot be created: exit 2 and one stderr line naming it and the fix."""
    blocker = tmp_path / "blocker"
    blocker.write_text("not a folder", encoding="utf-8")
    agent = scene.agent(state_dir=blocker / "state")
    await agent.start()
    assert await agent.wait(STEP_TIMEOUT) == 2
    _assert_one_state_dir_line(agent, blocker / "state")


async def test_read_only_state_dir_exits_2_with_one_line(scene: Scene, tmp_path: Path) -> None:
    """state_dir on a read-only filesystem (root cannot write it either): exit 2, one line."""
    with mounted_tmpfs(tmp_path / "ro", "ro,size=1m") as folder:
        agent = scene.agent(state_dir=folder)
        await agent.start()
        assert await agent.wait(STEP_TIMEOUT) == 2
        _assert_one_state_dir_line(agent, folder)
    assert scene.world.saturno.reports == [], "nothing may be reported without durable state"


async def test_disk_full_during_download_fails_the_job_cleanly(
    scene: Scene, tmp_path: Path
) -> None:
    """ENOSPC mid-download: job failed naming disk space, end report sent, state.json valid."""
    with mounted_tmpfs(tmp_path / "small", "size=2m") as state_dir:
        agent = scene.agent(state_dir=state_dir)
        await _run_job_with_a_big_art(scene, agent)
        _assert_failed_cleanly(scene, state_dir, "No space left on device")


async def test_disk_full_when_the_state_is_saved_still_reports_and_stops(
    scene: Scene, tmp_path: Path
) -> None:
    """The disk fills up mid-process (not by us): the job fails, is reported, the VM stops."""
    with mounted_tmpfs(tmp_path / "small", "size=2m") as state_dir:
        agent = scene.agent(state_dir=state_dir, processor="slow-manifest", process_seconds=1.0)
        await agent.start()
        assert await scene.post_job(agent) == 200
        await scene.reach(agent, event="stage", stage="process")
        with contextlib.suppress(OSError), (state_dir / "filler").open("wb") as filler:
            while True:  # something else on the VM takes the last byte
                filler.write(bytes(64 * 1024))
        assert await agent.wait(LIFE_TIMEOUT) == 0, agent.stderr
        (end,) = scene.world.saturno.reports_for("done")
        assert end.body["status"] == "failed", end.body
        assert "No space left on device" in end.body["error"]
        assert scene.systemctl_calls() == ["poweroff"]
        # Each save first replaces state.json.prev, which frees the page the next write
        # needs, so on a full disk the saves may well succeed; if one did not, it is logged.
        json.loads((state_dir / STATE_FILE).read_text(encoding="utf-8"))  # the last good one
        assert not (state_dir / f"{STATE_FILE}.corrupt").exists()
        record = StateStore(state_dir).open()
        saved = record.end is not None and record.end.outcome == "delivered"
        assert saved or agent.events("state_save_failed"), "the lost durability must be logged"


async def test_write_refused_during_download_fails_the_job_cleanly(scene: Scene) -> None:
    """EFBIG mid-download (RLIMIT_FSIZE, no root needed): the same clean failure."""
    agent = scene.agent()
    with file_size_limit(BIG_BYTES // 2):
        await agent.start()
    await _run_job_with_a_big_art(scene, agent, started=True)
    _assert_failed_cleanly(scene, scene.tmp_path / "state", "File too large")


async def _run_job_with_a_big_art(scene: Scene, agent: AgentProcess, started: bool = False) -> None:
    """Post a job whose arts_path names a file bigger than the disk; wait for the exit."""
    scene.world.art.add_file(BIG, os.urandom(BIG_BYTES), content_type="image/png")
    if not started:
        await agent.start()
    extra = f"{scene.world.url('art')}{BIG}"
    payload = scene.world.art.job_payload("ntd-disk", base_url=scene.world.url("art"))
    payload["arts_path"] = [*payload["arts_path"], extra]
    url = f"http://127.0.0.1:{await scene.port(agent)}"
    answer = await submit(url, payload, authorization=saturno_token(scene.world))
    assert answer.status == 200, answer.body
    assert await agent.wait(LIFE_TIMEOUT) == 0


def _assert_failed_cleanly(scene: Scene, state_dir: Path, reason: str) -> None:
    (end,) = scene.world.saturno.reports_for("done")
    assert end.body["status"] == "failed", end.body
    assert reason in end.body["error"] and "disk space" in end.body["error"], end.body
    record = StateStore(state_dir).open()  # would set a corrupt file aside: it must not
    assert not (state_dir / f"{STATE_FILE}.corrupt").exists()
    json.loads((state_dir / STATE_FILE).read_text(encoding="utf-8"))
    assert record.job is not None and record.job.state is JobState.FAILED
    assert record.end is not None and record.end.outcome == "delivered"
    assert record.end.key == end.idempotency_key
    leftovers = [p.name for p in state_dir.rglob(".*") if p.is_file()]
    assert leftovers == [], f"temporary files left behind: {leftovers}"


def _assert_one_state_dir_line(agent: AgentProcess, state_dir: Path) -> None:
    lines = agent.stderr.strip().splitlines()
    assert len(lines) == 1, agent.stderr
    assert "state_dir" in lines[0] and str(state_dir) in lines[0], lines[0]
    assert "writable" in lines[0], lines[0]
