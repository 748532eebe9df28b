"""Durable state: atomic writes, round trips, corrupt files set aside, unusable folders."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest
from notraining_agent.errors import EXIT_CONFIG, StateError
from notraining_agent.job.spec import JobSpec
from notraining_agent.life.states import JobState
from notraining_agent.life.store import (
    STATE_FILE,
    AgentRecord,
    JobRecord,
    Report,
    ReportOutcome,
    StateStore,
    _encode,
)

from tests.fakes import job_spec


def spec(ntd: str = "ntd-1") -> JobSpec:
    return job_spec(ntd, arts_path=("https://art.test/a.png", "https://art.test/b.png"))


def names(folder: Path) -> list[str]:
    """The file names in ``folder``, sorted (temp files would show here)."""
    return sorted(p.name for p in folder.iterdir())


def full_record() -> AgentRecord:
    """A record with every part filled in: boot report, a finished job, its end report."""
    return AgentRecord(
        boot_id="boot-1",
        register=Report(
            kind="register",
            url="http://saturno.test/register/",
            body={"name": "vm-1", "port": 80},
            key="key-register",
            created_at=1000.0,
            outcome="delivered",
            attempts=2,
        ),
        job=JobRecord(
            spec=spec(),
            state=JobState.DONE,
            via="http",
            accepted_at=1001.0,
            attempts=1,
            started_at=1002.0,
            finished_at=1003.0,
            error=None,
            arts=2,
            output_uri="file:///srv/results/ntd-1",
            warnings=["b.png only in arts_path"],
        ),
        end=Report(
            kind="done",
            url="http://saturno.test/done/",
            body={"status": "done", "arts": 2},
            key="key-done",
            created_at=1004.0,
        ),
    )


async def test_round_trip_of_a_full_record(tmp_path: Path) -> None:
    """A saved record with job and reports reads back equal, job state and tuple included."""
    store = StateStore(tmp_path / "state")
    assert store.open() == AgentRecord()
    await store.save(full_record())
    loaded = StateStore(tmp_path / "state").open()
    assert loaded == full_record()
    assert loaded.job is not None
    assert loaded.job.state is JobState.DONE
    assert loaded.job.spec.arts_path == ("https://art.test/a.png", "https://art.test/b.png")
    assert loaded.end is not None
    assert loaded.end.pending


async def test_round_trip_of_an_empty_record(tmp_path: Path) -> None:
    """A record with nothing in it survives a restart too."""
    store = StateStore(tmp_path)
    store.open()
    await store.save(AgentRecord(boot_id="b"))
    assert StateStore(tmp_path).open() == AgentRecord(boot_id="b")


async def test_file_is_json_with_a_version(tmp_path: Path) -> None:
    """The state file is readable JSON carrying its format version and the job state's name."""
    store = StateStore(tmp_path)
    store.open()
    await store.save(full_record())
    data = json.loads((tmp_path / STATE_FILE).read_text(encoding="utf-8"))
    assert data["version"] == 1
    assert data["job"]["state"] == "done"


def test_open_creates_missing_folders(tmp_path: Path) -> None:
    """open() creates state_dir with its parents and leaves no probe file behind."""
    state_dir = tmp_path / "a" / "b"
    assert StateStore(state_dir).open() == AgentRecord()
    assert state_dir.is_dir()
    assert list(state_dir.iterdir()) == []


async def test_failed_rename_keeps_the_old_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A crash between write and rename leaves the previous state and no temp file."""
    store = StateStore(tmp_path)
    store.open()
    await store.save(AgentRecord(boot_id="old"))
    before = (tmp_path / STATE_FILE).read_bytes()

    def crash(self: Path, target: Path) -> Path:
        raise OSError(5, "Input/output error")

    monkeypatch.setattr(Path, "replace", crash)
    with pytest.raises(OSError, match="Input/output"):
        await store.save(full_record())
    monkeypatch.undo()
    assert (tmp_path / STATE_FILE).read_bytes() == before
    assert names(tmp_path) == [STATE_FILE]
    assert StateStore(tmp_path).open() == AgentRecord(boot_id="old")


async def test_concurrent_saves_leave_a_valid_file(tmp_path: Path) -> None:
    """Saves started together are written one at a time; the file is whole afterwards."""
    store = StateStore(tmp_path)
    store.open()
    await asyncio.gather(*(store.save(AgentRecord(boot_id=f"b{i}")) for i in range(20)))
    loaded = StateStore(tmp_path).open()
    assert loaded.boot_id is not None
    assert loaded.boot_id.startswith("b")
    assert names(tmp_path) == [STATE_FILE, f"{STATE_FILE}.prev"]


@pytest.mark.parametrize(
    "content",
    [
        "{not json",
        "",
        '{"version": 99}',
        '{"version": 1, "job": {"state": "done"}}',
        '{"version": 1, "register": {"kind": "register"}}',
    ],
)
def test_corrupt_file_is_moved_aside(tmp_path: Path, content: str) -> None:
    """An unreadable state file is kept as state.json.corrupt and the agent starts fresh."""
    (tmp_path / STATE_FILE).write_text(content, encoding="utf-8")
    assert StateStore(tmp_path).open() == AgentRecord()
    assert not (tmp_path / STATE_FILE).exists()
    assert (tmp_path / f"{STATE_FILE}.corrupt").read_text(encoding="utf-8") == content


@pytest.mark.parametrize("content", ["null", "[]", "1"])
def test_state_file_holding_no_object_is_moved_aside(tmp_path: Path, content: str) -> None:
    """A state file whose JSON is not an object is corrupt too, not a crash at start."""
    (tmp_path / STATE_FILE).write_text(content, encoding="utf-8")
    assert StateStore(tmp_path).open() == AgentRecord()
    assert (tmp_path / f"{STATE_FILE}.corrupt").exists()


def test_unwritable_state_dir_is_a_state_error(tmp_path: Path) -> None:
    """A state_dir that cannot be created stops the agent with exit 2 and says what to do."""
    blocker = tmp_path / "file"
    blocker.write_text("not a folder", encoding="utf-8")
    state_dir = blocker / "sub"
    with pytest.raises(StateError) as info:
        StateStore(state_dir).open()
    assert info.value.exit_code == EXIT_CONFIG
    message = str(info.value)
    assert str(state_dir) in message
    assert "not writable" in message
    assert "set state_dir to a writable folder" in message


def test_job_dir_is_safe(tmp_path: Path) -> None:
    """A job's folder stays under state_dir/jobs whatever its id holds."""
    store = StateStore(tmp_path)
    assert store.job_dir("ntd-1").parent == tmp_path / "jobs"
    assert store.job_dir("ntd-1").name.startswith("ntd-1-")
    assert store.job_dir("ntd-1") == store.job_dir("ntd-1")
    hostile = store.job_dir("../../etc/passwd")
    assert hostile.parent == tmp_path / "jobs"
    assert ".." not in hostile.parts


def test_job_dirs_of_similar_ids_differ(tmp_path: Path) -> None:
    """Ids that sanitise alike (a/b, a_b) still get folders of their own."""
    store = StateStore(tmp_path)
    assert store.job_dir("a/b") != store.job_dir("a_b")


def test_report_pending_until_an_outcome() -> None:
    """A report is pending until delivered, refused, expired or skipped."""
    report = Report("done", "http://s.test/", {}, "k", 0.0)
    assert report.pending
    outcomes: tuple[ReportOutcome, ...] = ("delivered", "refused", "expired", "skipped")
    for outcome in outcomes:
        report.outcome = outcome
        assert not report.pending


def test_job_public_view() -> None:
    """The /status view of a job names its ids, state and progress, not its URLs."""
    job = full_record().job
    assert job is not None
    view = job.public()
    assert view["ntd_transaction_id"] == "ntd-1"
    assert view["no_transaction_id"] == "no-1"
    assert view["state"] == "done"
    assert view["arts"] == 2
    assert "zip_art" not in view
    json.dumps(view)


def _wrong_shapes() -> list[object]:
    """Valid JSON whose parts have the wrong types: such files crashed the agent at start."""
    good = json.loads(json.dumps(_encoded(full_record())))
    shapes: list[object] = [
        pytest.param(json.dumps({"version": 1, "job": "x"}), id="job-a-string"),
        pytest.param(json.dumps({"version": 1, "register": "x"}), id="register-a-string"),
        pytest.param(json.dumps({"version": 1, "end": []}), id="end-a-list"),
        pytest.param(json.dumps({"version": 1, "boot_id": 5}), id="boot-id-a-number"),
    ]
    for path, value in [
        (("job", "accepted_at"), "yesterday"),
        (("job", "attempts"), "3"),
        (("job", "spec"), "x"),
        (("job", "spec", "arts_path"), 7),
        (("job", "spec", "ntd_transaction_id"), None),
        (("job", "warnings"), "w"),
        (("job", "state"), "flying"),
        (("end", "attempts"), None),
        (("end", "outcome"), "lost"),
        (("end", "body"), []),
        (("register", "created_at"), True),
    ]:
        bad = json.loads(json.dumps(good))
        node = bad
        for key in path[:-1]:
            node = node[key]
        node[path[-1]] = value
        shapes.append(pytest.param(json.dumps(bad), id="-".join(path)))
    return shapes


def _encoded(record: AgentRecord) -> dict[str, object]:
    return _encode(record)


@pytest.mark.parametrize("content", _wrong_shapes())
def test_state_file_of_the_wrong_shape_is_corrupt_not_a_crash(tmp_path: Path, content: str) -> None:
    """Wrong types anywhere in the file are treated like a corrupt file (issue 14)."""
    (tmp_path / STATE_FILE).write_text(content, encoding="utf-8")
    assert StateStore(tmp_path).open() == AgentRecord()
    assert (tmp_path / f"{STATE_FILE}.corrupt").read_text(encoding="utf-8") == content


async def test_a_corrupt_newest_write_falls_back_to_the_previous_state(tmp_path: Path) -> None:
    """Corruption of the newest write loses at most that write: state.json.prev is read."""
    store = StateStore(tmp_path)
    store.open()
    older = full_record()
    await store.save(older)
    newer = full_record()
    newer.boot_id = "boot-2"
    await store.save(newer)
    (tmp_path / STATE_FILE).write_text('{"version": 1, "job": "x"}', encoding="utf-8")
    assert StateStore(tmp_path).open() == older
    assert (tmp_path / f"{STATE_FILE}.corrupt").exists()
