"""Durable state under ``state_dir`` (contract section 7).

The whole state is one small JSON document, ``state.json``: the boot report, the
job record and the end report (the outbox). One document means one atomic write
per transition (temp file, fsync, rename, fsync of the folder), so a crash leaves
either the old state or the new one, never a mix. Transitions are saved before
they take effect; a restart reads the file and goes on from there.

Before each replace the current file becomes ``state.json.prev`` (a hard link, so
no copy). A file that is not JSON, or whose shape or types are wrong, is set aside
as ``state.json.corrupt`` and the previous state is read instead: corruption of the
newest write loses at most that write, never the accepted job and its end report.
"""

from __future__ import annotations

import asyncio
import dataclasses
import hashlib
import json
import logging
import os
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from notraining_agent.errors import StateError
from notraining_agent.job.paths import safe_part
from notraining_agent.job.spec import JobSpec
from notraining_agent.life.shape import shape_problem
from notraining_agent.life.states import JobState
from notraining_agent.util.fsio import atomic_write

log = logging.getLogger(__name__)

STATE_FILE = "state.json"
PREVIOUS_SUFFIX = ".prev"
FORMAT_VERSION = 1
MAX_ATTEMPTS = 3

ReportKind = Literal["register", "done"]
ReportOutcome = Literal["pending", "delivered", "refused", "expired", "skipped"]


@dataclass
class Report:
    """A report to Saturno; ``key`` is its Idempotency-Key, the same on every try."""

    kind: ReportKind
    url: str
    body: dict[str, Any]
    key: str
    created_at: float
    outcome: ReportOutcome = "pending"
    attempts: int = 0

    @property
    def pending(self) -> bool:
        """True until delivered, refused for good, past its deadline, or skipped (no URL)."""
        return self.outcome == "pending"


@dataclass
class JobRecord:
    """One job's life: what was posted, how far it got, and how it ended."""

    spec: JobSpec
    state: JobState
    via: str
    accepted_at: float
    attempts: int = 0
    started_at: float | None = None
    finished_at: float | None = None
    error: str | None = None
    arts: int = 0
    output_uri: str | None = None
    warnings: list[str] = field(default_factory=list)

    def public(self) -> dict[str, Any]:
        """The job as ``/status`` shows it."""
        return {
            "ntd_transaction_id": self.spec.ntd_transaction_id,
            "no_transaction_id": self.spec.no_transaction_id,
            "state": self.state.value,
            "via": self.via,
            "attempts": self.attempts,
            "accepted_at": self.accepted_at,
            "started_at": self.started_at,
            "finished_at": self.finished_at,
            "error": self.error,
            "arts": self.arts,
            "output_uri": self.output_uri,
        }


@dataclass
class AgentRecord:
    """Everything that must survive a restart."""

    boot_id: str | None = None
    register: Report | None = None
    job: JobRecord | None = None
    end: Report | None = None


class StateStore:
    """Reads and atomically writes ``state_dir/state.json``; owns the job folders."""

    def __init__(self, state_dir: Path) -> None:
        self.state_dir = state_dir
        self._path = state_dir / STATE_FILE
        self._lock = asyncio.Lock()

    def open(self) -> AgentRecord:
        """Create ``state_dir`` if needed, prove it writable, and load the saved record."""
        try:
            self.state_dir.mkdir(parents=True, exist_ok=True)
            probe = tempfile.NamedTemporaryFile(dir=self.state_dir, prefix=".probe-")  # noqa: SIM115
            probe.close()
        except OSError as exc:
            raise StateError(
                f"state_dir {self.state_dir} is not writable ({exc.strerror}); "
                "fix its permissions or set state_dir to a writable folder"
            ) from exc
        if not self._path.exists():
            return AgentRecord()
        try:
            return _load(self._path)
        except (OSError, ValueError, KeyError, TypeError) as exc:
            aside = self._path.with_name(f"{STATE_FILE}.corrupt")
            self._path.replace(aside)
            problem = exc
        previous = self._previous
        try:
            record = _load(previous)
        except (OSError, ValueError, KeyError, TypeError):
            log.error("state file unreadable (%s); moved to %s and starting fresh", problem, aside)
            return AgentRecord()
        log.error(
            "state file unreadable (%s); moved to %s and went on from %s (the write before)",
            problem,
            aside,
            previous,
        )
        return record

    @property
    def _previous(self) -> Path:
        return self._path.with_name(STATE_FILE + PREVIOUS_SUFFIX)

    async def save(self, record: AgentRecord) -> None:
        """Write ``record`` atomically, off the event loop, one write at a time."""
        data = json.dumps(_encode(record), indent=1, sort_keys=True)
        async with self._lock:
            await asyncio.to_thread(self._replace, data)

    def _replace(self, data: str) -> None:
        """Keep the current file as ``state.json.prev``, then write the new one."""
        if self._path.exists():
            staged = self._path.with_name(f".{STATE_FILE}{PREVIOUS_SUFFIX}.new")
            staged.unlink(missing_ok=True)
            try:
                try:
                    os.link(self._path, staged)
                except OSError:  # a file system without hard links
                    shutil.copyfile(self._path, staged)
                staged.replace(self._previous)
            finally:
                staged.unlink(missing_ok=True)
        atomic_write(self._path, data)

    def job_dir(self, ntd_transaction_id: str) -> Path:
        """The job's working folder, named after its id: readable, and unique via a short hash."""
        digest = hashlib.sha256(ntd_transaction_id.encode()).hexdigest()[:12]
        return self.state_dir / "jobs" / f"{safe_part(ntd_transaction_id)}-{digest}"


def _encode(record: AgentRecord) -> dict[str, Any]:
    data = dataclasses.asdict(record)  # JobState is a StrEnum: it encodes as its value
    data["version"] = FORMAT_VERSION
    return data


def _load(path: Path) -> AgentRecord:
    return _decode(json.loads(path.read_text(encoding="utf-8")))


def _decode(data: Any) -> AgentRecord:
    if not isinstance(data, dict):
        raise TypeError("the state file does not hold a JSON object")
    if data.get("version") != FORMAT_VERSION:
        raise ValueError(f"unknown state format {data.get('version')!r}")
    fields = {key: value for key, value in data.items() if key != "version"}
    if (problem := shape_problem(fields, AgentRecord)) is not None:
        raise TypeError(f"the state file has the wrong shape: {problem}")
    job = data.get("job")
    job_record = None
    if job is not None:
        spec = job.pop("spec")
        spec["arts_path"] = tuple(spec["arts_path"])
        job_record = JobRecord(spec=JobSpec(**spec), **{**job, "state": JobState(job["state"])})
    return AgentRecord(
        boot_id=data.get("boot_id"),
        register=Report(**data["register"]) if data.get("register") else None,
        job=job_record,
        end=Report(**data["end"]) if data.get("end") else None,
    )
