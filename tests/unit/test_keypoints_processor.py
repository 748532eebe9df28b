"""The keypoints processor end to end: enroll a package, and stop for real when cancelled."""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from notraining_agent.errors import ProcessorError
from notraining_agent.job.spec import JobSpec
from notraining_agent.processors import load_processor
from notraining_agent.processors.base import Art, ProcessorContext
from notraining_agent.processors.keypoints import enroll, index, process
from notraining_agent.processors.keypoints.options import FEATURES_ENV, KeypointsOptions
from notraining_testkit.emulators import artgen

from tests.polling import fifo_reader_blocked, fifo_reader_blocked_sync

JOB = JobSpec("ntd-1", None, "AR", "retail", "promo", "POP", None, ())


def _context(
    tmp_path: Path, files: dict[str, bytes | None], progress: list[tuple[int, int]] | None = None
) -> ProcessorContext:
    """Arts written to disk (None = a FIFO that blocks whoever reads it)."""
    folder = tmp_path / "arts"
    folder.mkdir(exist_ok=True)
    arts = []
    for name, data in files.items():
        path = folder / name
        if data is None:
            os.mkfifo(path)
        else:
            path.write_bytes(data)
        content = data or b""
        arts.append(Art(name, path, ("zip",), hashlib.sha256(content).hexdigest(), len(content)))
    seen = progress if progress is not None else []
    return ProcessorContext(
        JOB,
        tuple(arts),
        (),
        tmp_path / "work",
        tmp_path / "out",
        lambda done, total: seen.append((done, total)),
    )


def _keypoint_children() -> list[int]:
    """Live child processes of this test process running the keypoints worker."""
    found = []
    for pid in _children_of(os.getpid()):
        try:
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
        except OSError:
            continue  # exited since it was listed
        if b"notraining_agent.processors.keypoints" in cmdline:
            found.append(pid)
    return found


async def test_enrolls_a_package_and_flags_what_will_not_work(tmp_path: Path) -> None:
    """Good arts are indexed and recognised; flat and broken ones are warned about; the
    contact sheet is written next to the index."""
    files: dict[str, bytes | None] = {f"art_{i}.png": artgen.generate_art(i) for i in range(3)}
    files["flat.png"] = artgen.flat_art()
    files["notes.txt"] = b"this is not an image"
    progress: list[tuple[int, int]] = []
    ctx = _context(tmp_path, files, progress)

    result = await enroll(ctx, KeypointsOptions(workers=2))

    assert result.arts == 5
    assert result.extra["arts_enrolled"] == 4
    assert result.extra["arts_failed"] == 1
    assert progress[-1] == (5, 5)
    assert [d for d, _ in progress] == sorted(d for d, _ in progress)
    manifest = json.loads((ctx.output_dir / "manifest.json").read_text(encoding="utf-8"))
    arts = {a["name"]: a for a in manifest["arts"]}
    for i in range(3):
        assert arts[f"art_{i}.png"]["recall"] >= 0.7
        assert arts[f"art_{i}.png"]["warnings"] == []
    assert arts["flat.png"]["recall"] == 0.0
    assert any("too little texture" in w for w in arts["flat.png"]["warnings"])
    assert arts["notes.txt"]["status"] == "failed"
    assert any(w.startswith("flat.png: too little texture") for w in result.warnings)
    assert any(w.startswith("notes.txt: not enrolled") for w in result.warnings)
    loaded = index.load(ctx.output_dir)
    assert loaded.names == ("art_0.png", "art_1.png", "art_2.png", "flat.png")
    sheet = ctx.output_dir / "contact-sheet.png"
    assert sheet.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert not _keypoint_children()


async def test_job_timeout_stops_the_workers(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A job_timeout (the job cancelled when its deadline passes) ends the processor: the
    worker blocked on an art dies of the SIGTERM it gets at once (not of the SIGKILL after
    the grace), and no worker is left alive. The deadline passes once the worker is blocked
    reading the art, whatever the time then."""
    caplog.set_level(logging.INFO, logger="notraining_agent.processors.keypoints.worker")
    ctx = _context(tmp_path, {"a.png": artgen.generate_art(1), "stuck.png": None})
    fifo = tmp_path / "arts" / "stuck.png"

    async def expire_when_blocked(deadline: asyncio.Timeout) -> int:
        write_end = await fifo_reader_blocked(fifo)
        deadline.reschedule(asyncio.get_running_loop().time())
        return write_end

    with pytest.raises(TimeoutError):
        async with asyncio.timeout(None) as deadline:
            expiry = asyncio.create_task(expire_when_blocked(deadline))
            await process(ctx)
    os.close(await expiry)
    assert not _keypoint_children()
    stopped = [m for m in caplog.messages if m.startswith("keypoints worker ")]
    assert stopped
    assert all(m.endswith(f"stopped (signal {signal.SIGTERM:d})") for m in stopped), stopped


async def test_no_enrollable_art_fails_the_job(tmp_path: Path) -> None:
    """When every art is unreadable the job fails, quoting the reasons."""
    ctx = _context(tmp_path, {"a.txt": b"text", "b.pdf": b"%PDF"})
    with pytest.raises(ProcessorError, match=r"none of the 2 arts.*a\.txt: not an image"):
        await process(ctx)


async def test_no_art_at_all_fails_the_job(tmp_path: Path) -> None:
    """A job without arts is a ProcessorError, not an empty index."""
    with pytest.raises(ProcessorError, match="no arts"):
        await process(_context(tmp_path, {}))


async def test_orb_is_chosen_by_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """NOTRAINING_KEYPOINTS_FEATURES=orb, read when the job starts, gives an ORB index."""
    monkeypatch.setenv(FEATURES_ENV, "orb")
    ctx = _context(tmp_path, {"a.png": artgen.generate_art(1), "b.png": artgen.generate_art(2)})
    result = await process(ctx)
    assert result.extra["features"] == "orb"
    assert index.load(ctx.output_dir).kind == "orb"
    manifest = json.loads((ctx.output_dir / "manifest.json").read_text(encoding="utf-8"))
    assert manifest["features"] == "orb"
    assert all(a["recall"] >= 0.7 for a in manifest["arts"])


def test_loaded_by_name() -> None:
    """processor=keypoints resolves to this package's process()."""
    assert load_processor("keypoints") is process


def test_missing_vision_extra_is_a_config_error() -> None:
    """Without cv2 the processor does not load: ConfigError with the pip command."""
    script = (
        "import sys; sys.modules['cv2'] = None\n"
        "from notraining_agent.errors import ConfigError\n"
        "from notraining_agent.processors import load_processor\n"
        "try:\n    load_processor('keypoints')\n"
        "except ConfigError as exc:\n    print(exc)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=True, timeout=60
    )
    assert "pip install 'notraining-agent[vision]'" in out.stdout


AGENT_LIKE = """
import asyncio, hashlib, os, signal, sys
from pathlib import Path
from notraining_agent.job.spec import JobSpec
from notraining_agent.processors.base import Art, ProcessorContext
from notraining_agent.processors.keypoints import process

async def main() -> None:
    stuck = Path(sys.argv[1])
    art = Art("stuck.png", stuck, ("zip",), hashlib.sha256(b"").hexdigest(), 0)
    job = JobSpec("ntd-1", None, "AR", "retail", "promo", "POP", None, ())
    ctx = ProcessorContext(job, (art,), (), stuck.parent / "w", stuck.parent / "o", print)
    task = asyncio.create_task(process(ctx))
    # What the agent does on SIGTERM: cancel the job, wait for it, exit 0.
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, task.cancel)
    try:
        await task
    except asyncio.CancelledError:
        print("cancelled", flush=True)

asyncio.run(main())
"""


def _children_of(pid: int) -> list[int]:
    """Processes whose parent is ``pid``, from /proc."""
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        if int(fields[1]) == pid:
            found.append(int(stat.parent.name))
    return found


def _running(pid: int) -> bool:
    """Alive and not a zombie (an orphan's zombie waits for whoever reaps it here)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state != "Z"


def _start_agent_like(tmp_path: Path) -> tuple[subprocess.Popen[str], list[int], int]:
    """A process running the processor like the agent does, its worker's pid once that worker
    is blocked reading its art (a FIFO), and the FIFO's write end that keeps it blocked."""
    stuck = tmp_path / "stuck.png"
    os.mkfifo(stuck)
    agent = subprocess.Popen(
        [sys.executable, "-c", AGENT_LIKE, str(stuck)],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    while not (workers := _children_of(agent.pid)) and agent.poll() is None:
        time.sleep(0.05)
    assert workers, "the worker never started"
    return agent, workers, fifo_reader_blocked_sync(stuck)


@pytest.mark.parametrize("signal_name", ["SIGTERM", "SIGKILL"])
def test_agent_signals_leave_no_worker_behind(tmp_path: Path, signal_name: str) -> None:
    """SIGTERM (job cancelled) or even SIGKILL of the agent ends its worker. The worker is
    blocked reading a FIFO this test keeps open, so only the agent's end can end it; the test
    waits for that with no time limit of its own (pytest's timeout ends a worker left behind)."""
    agent, workers, write_end = _start_agent_like(tmp_path)
    try:
        agent.send_signal(getattr(signal, signal_name))
        out, _ = agent.communicate()
        if signal_name == "SIGTERM":
            assert agent.returncode == 0
            assert "cancelled" in out
        else:
            assert agent.returncode == -signal.SIGKILL
        while any(_running(pid) for pid in workers):
            time.sleep(0.05)
    finally:
        os.close(write_end)
        if agent.poll() is None:
            agent.kill()
            agent.wait()
