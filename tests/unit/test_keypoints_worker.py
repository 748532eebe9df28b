"""Worker processes: events, failures, and stopping them for real when the job is cancelled."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from notraining_agent.errors import ProcessorError
from notraining_agent.processors.keypoints import worker
from notraining_agent.processors.keypoints.options import KeypointsOptions
from notraining_agent.processors.keypoints.worker import run_stage, worker_count
from notraining_testkit.emulators import artgen


def _plan(tmp_path: Path, arts: dict[str, Path]) -> Path:
    plan = {
        "options": KeypointsOptions().to_json(),
        "work_dir": str(tmp_path / "work"),
        "output_dir": str(tmp_path / "out"),
        "arts": [{"name": name, "path": str(path)} for name, path in arts.items()],
    }
    path = tmp_path / "plan.json"
    path.write_text(json.dumps(plan), encoding="utf-8")
    return path


def _blocking_art(tmp_path: Path) -> Path:
    """A FIFO nobody writes to: reading it blocks the worker for as long as we like."""
    fifo = tmp_path / "stuck.png"
    os.mkfifo(fifo)
    return fifo


def _alive(pid: int) -> bool:
    return Path(f"/proc/{pid}").exists()


async def test_events_from_every_shard_reach_the_parent(tmp_path: Path) -> None:
    """Two children extract two arts each and every art's event arrives."""
    arts = {}
    for i in range(4):
        arts[f"a{i}.png"] = tmp_path / f"a{i}.png"
        arts[f"a{i}.png"].write_bytes(artgen.generate_art(i, size=(200, 150)))
    events: list[dict[str, Any]] = []
    await run_stage("extract", _plan(tmp_path, arts), 2, events.append)
    assert sorted(e["art"] for e in events) == [0, 1, 2, 3]
    assert all(e["event"] == "extracted" and e["ok"] for e in events)
    assert len(list((tmp_path / "work" / "features").iterdir())) == 4


async def test_cancelling_the_stage_kills_the_children_at_once(tmp_path: Path) -> None:
    """A cancelled stage returns within the grace, and its child process is gone."""
    plan = _plan(tmp_path, {"stuck.png": _blocking_art(tmp_path)})
    pids: list[int] = []
    task = asyncio.create_task(run_stage("extract", plan, 1, lambda e: None, on_spawn=pids.append))
    await asyncio.sleep(1.0)  # the child is importing or blocked on the FIFO by now
    assert len(pids) == 1
    assert _alive(pids[0])
    started = time.monotonic()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert time.monotonic() - started < worker.TERMINATE_GRACE
    assert not _alive(pids[0])


async def test_a_child_ignoring_sigterm_is_killed_after_the_grace(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """SIGKILL follows SIGTERM when the child does not die: nothing outlives the job."""
    stubborn = (
        "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); "
        "print('ready', flush=True); time.sleep(60)"
    )
    monkeypatch.setattr(worker, "command", lambda *a: [sys.executable, "-c", stubborn])
    monkeypatch.setattr(worker, "TERMINATE_GRACE", 0.3)
    pids: list[int] = []
    task = asyncio.create_task(
        run_stage("extract", tmp_path / "plan.json", 1, lambda e: None, on_spawn=pids.append)
    )
    await asyncio.sleep(0.5)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await asyncio.wait_for(task, 5)
    assert not _alive(pids[0])


async def test_a_failing_child_fails_the_stage_with_its_output(tmp_path: Path) -> None:
    """A child that exits non-zero raises ProcessorError quoting its stderr."""
    with pytest.raises(
        ProcessorError, match=r"extract worker 0 exited with code 1 \(FileNotFoundError"
    ):
        await run_stage("extract", tmp_path / "missing.json", 1, lambda e: None)


async def test_one_failure_stops_the_other_children(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """When shard 0 fails, shard 1 (still running) is stopped rather than left behind."""

    def fake(stage: str, plan: Path, shard: int, shards: int) -> list[str]:
        script = "import sys; sys.exit(3)" if shard == 0 else "import time; time.sleep(60)"
        return [sys.executable, "-c", script]

    monkeypatch.setattr(worker, "command", fake)
    pids: list[int] = []
    started = time.monotonic()
    with pytest.raises(ProcessorError, match="code 3"):
        await run_stage("check", tmp_path / "p.json", 2, lambda e: None, on_spawn=pids.append)
    assert time.monotonic() - started < 10
    assert not any(_alive(pid) for pid in pids)


async def test_foreign_stdout_lines_are_ignored(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Only JSON object lines are events; library chatter and broken JSON are skipped."""
    script = "print('hello'); print('{broken'); print('{\"event\": \"x\", \"n\": 1}')"
    monkeypatch.setattr(worker, "command", lambda *a: [sys.executable, "-c", script])
    events: list[dict[str, Any]] = []
    await run_stage("extract", tmp_path / "p.json", 1, events.append)
    assert events == [{"event": "x", "n": 1}]


def test_child_exits_when_its_parent_goes(tmp_path: Path) -> None:
    """Closing the child's stdin (what the parent's death does) makes it exit by itself."""
    plan = _plan(tmp_path, {"stuck.png": _blocking_art(tmp_path)})
    child = subprocess.Popen(
        worker.command("extract", plan, 0, 1),
        stdin=subprocess.PIPE,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env=worker.child_env(os.environ),
    )
    try:
        time.sleep(1.0)
        assert child.poll() is None  # blocked on the FIFO
        assert child.stdin is not None
        child.stdin.close()
        assert child.wait(timeout=10) == 70
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()


def test_worker_count_is_bounded_by_cpus_and_items() -> None:
    """Never more children than items, at least one, and the request wins when given."""
    assert worker_count(None, 1) == 1
    assert worker_count(3, 10) == 3
    assert worker_count(8, 2) == 2
    assert worker_count(None, 0) == 1
    assert worker_count(None, 10_000) == len(os.sched_getaffinity(0))


def test_children_run_single_threaded_and_find_this_package() -> None:
    """The child environment pins BLAS/OpenMP to one thread and puts our root on PYTHONPATH."""
    env = worker.child_env({"PYTHONPATH": "/elsewhere"})
    assert env["OPENBLAS_NUM_THREADS"] == env["OMP_NUM_THREADS"] == "1"
    root = str(Path(worker.__file__).resolve().parents[3])
    assert env["PYTHONPATH"].split(os.pathsep) == [root, "/elsewhere"]
