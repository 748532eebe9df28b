"""Worker processes: events, failures, and stopping them for real when the job is cancelled."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from notraining_agent.errors import ProcessorError
from notraining_agent.processors.keypoints import worker
from notraining_agent.processors.keypoints.options import KeypointsOptions
from notraining_agent.processors.keypoints.worker import run_stage, worker_count
from notraining_testkit.emulators import artgen

from tests.polling import fifo_reader_blocked, fifo_reader_blocked_sync


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


def _stopped_by(caplog: pytest.LogCaptureFixture, pid: int) -> list[int]:
    """The signals the worker log says child ``pid`` was stopped by."""
    prefix = f"keypoints worker {pid} stopped (signal "
    return [
        int(message.removeprefix(prefix).rstrip(")"))
        for message in caplog.messages
        if message.startswith(prefix)
    ]


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


async def test_cancelling_the_stage_kills_the_children_at_once(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A cancelled stage's child, blocked reading its art, dies of the SIGTERM it gets at
    once (not of the SIGKILL that would follow the grace), and is gone when the stage returns."""
    caplog.set_level(logging.INFO, logger=worker.__name__)
    fifo = _blocking_art(tmp_path)
    plan = _plan(tmp_path, {"stuck.png": fifo})
    pids: list[int] = []
    task = asyncio.create_task(run_stage("extract", plan, 1, lambda e: None, on_spawn=pids.append))
    write_end = await fifo_reader_blocked(fifo)
    try:
        assert len(pids) == 1
        assert _alive(pids[0])
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
    finally:
        os.close(write_end)
    assert not _alive(pids[0])
    assert _stopped_by(caplog, pids[0]) == [signal.SIGTERM]


async def test_a_child_ignoring_sigterm_is_killed_after_the_grace(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """SIGKILL follows SIGTERM when the child does not die: nothing outlives the job."""
    caplog.set_level(logging.INFO, logger=worker.__name__)
    stubborn = (
        "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); "
        'print(\'{"event": "ready"}\', flush=True); time.sleep(60)'
    )
    monkeypatch.setattr(worker, "command", lambda *a: [sys.executable, "-c", stubborn])
    monkeypatch.setattr(worker, "TERMINATE_GRACE", 0.3)
    ready = asyncio.Event()
    pids: list[int] = []
    task = asyncio.create_task(
        run_stage("extract", tmp_path / "plan.json", 1, lambda e: ready.set(), on_spawn=pids.append)
    )
    await ready.wait()  # SIGTERM is ignored from here on
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert not _alive(pids[0])
    assert _stopped_by(caplog, pids[0]) == [signal.SIGKILL]


async def test_a_failing_child_fails_the_stage_with_its_output(tmp_path: Path) -> None:
    """A child that exits non-zero raises ProcessorError quoting its stderr."""
    with pytest.raises(
        ProcessorError, match=r"extract worker 0 exited with code 1 \(FileNotFoundError"
    ):
        await run_stage("extract", tmp_path / "missing.json", 1, lambda e: None)


async def test_one_failure_stops_the_other_children(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """When shard 0 fails, shard 1 (still in its 60 s sleep) is stopped by SIGTERM rather
    than waited for or left behind."""
    caplog.set_level(logging.INFO, logger=worker.__name__)

    def fake(stage: str, plan: Path, shard: int, shards: int) -> list[str]:
        script = "import sys; sys.exit(3)" if shard == 0 else "import time; time.sleep(60)"
        return [sys.executable, "-c", script]

    monkeypatch.setattr(worker, "command", fake)
    pids: list[int] = []
    with pytest.raises(ProcessorError, match="code 3"):
        await run_stage("check", tmp_path / "p.json", 2, lambda e: None, on_spawn=pids.append)
    assert not any(_alive(pid) for pid in pids)
    assert _stopped_by(caplog, pids[1]) == [signal.SIGTERM]


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
    """Closing the child's stdin (what the parent's death does) makes it exit by itself,
    even while it is blocked reading an art."""
    fifo = _blocking_art(tmp_path)
    plan = _plan(tmp_path, {"stuck.png": fifo})
    child = subprocess.Popen(
        worker.command("extract", plan, 0, 1),
        stdin=subprocess.PIPE,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env=worker.child_env(os.environ),
    )
    write_end: int | None = None
    try:
        write_end = fifo_reader_blocked_sync(fifo)
        assert child.poll() is None  # blocked reading the FIFO
        assert child.stdin is not None
        child.stdin.close()
        assert child.wait() == 70
    finally:
        if write_end is not None:
            os.close(write_end)
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
