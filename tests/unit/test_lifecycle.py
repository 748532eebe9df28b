"""The one-job life: offers, runs, outcomes, restarts and reports, with fake edges.

Real parts: the Lifecycle, the StateStore (in tmp), the SaturnoClient against the
Saturno emulator on loopback. Fakes: the job runner, stop_vm, boot facts, the
metadata watches and a clock whose sleep returns at once (shutdown_grace, backoff).
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, cast

import aiohttp
import pytest
from notraining_agent.config import Secret, Settings
from notraining_agent.errors import EXIT_OK, EXIT_STOP_FAILED, JobError
from notraining_agent.gce import InstanceInfo
from notraining_agent.gce.metadata import MetadataClient
from notraining_agent.host.systemd import Notifier
from notraining_agent.job.runner import JobOutcome
from notraining_agent.job.spec import JobSpec
from notraining_agent.life.lifecycle import BootFacts, Collaborators, Lifecycle
from notraining_agent.life.reports import end_body_for_job, new_report
from notraining_agent.life.saturno import SaturnoClient
from notraining_agent.life.states import AgentState, JobState, Offer
from notraining_agent.life.store import AgentRecord, JobRecord, Report, StateStore
from notraining_agent.util.retry import Backoff
from notraining_testkit.emulators._server import served
from notraining_testkit.emulators.saturno import SaturnoEmulator

from tests.fakes import T0, FakeClock, instance
from tests.fakes import job_spec as spec
from tests.polling import wait_until

BOOT_ID = "boot-1"


# -- fakes ---------------------------------------------------------------------------------


class RecordingNotifier(Notifier):
    """A Notifier outside systemd that remembers what it would have sent."""

    def __init__(self) -> None:
        super().__init__({})
        self.sent: list[str] = []

    def notify(self, message: str) -> None:
        self.sent.append(message)


class FakeRunner:
    """The job: returns ``outcome``, raises ``error``, or blocks until released or cancelled."""

    def __init__(self) -> None:
        self.calls: list[tuple[JobSpec, Path]] = []
        self.started = asyncio.Event()
        self.release = asyncio.Event()
        self.block = False
        self.cancelled = False
        self.error: BaseException | None = None
        self.outcome = JobOutcome(arts=3, output_uri="file:///out/ntd-1", warnings=("w1",))

    async def __call__(self, spec: JobSpec, job_dir: Path) -> JobOutcome:
        self.calls.append((spec, job_dir))
        self.started.set()
        try:
            if self.block:
                await self.release.wait()
        except asyncio.CancelledError:
            self.cancelled = True
            raise
        if self.error is not None:
            raise self.error
        return self.outcome


class FakeMetadata:
    """The watched metadata values; ``watch`` yields the current value, then each change."""

    def __init__(self) -> None:
        self.values = {
            "instance/preempted": "FALSE",
            "instance/maintenance-event": "NONE",
            "instance/attributes/": "{}",
        }
        self.guest: list[str] = []
        self._changed = asyncio.Event()

    def set(self, path: str, value: str) -> None:
        self.values[path] = value
        self._changed.set()
        self._changed = asyncio.Event()

    async def watch(
        self, path: str, *, recursive: bool = False, timeout_sec: int = 60
    ) -> AsyncIterator[str]:
        last: str | None = None
        while True:
            changed = self._changed
            if self.values[path] != last:
                last = self.values[path]
                yield last
            await changed.wait()

    async def get(self, path: str, *, timeout: float | None = None) -> str:
        return self.values[path]

    async def put_guest_attribute(self, key: str, value: str) -> None:
        assert key == "notraining/state"
        self.guest.append(value)


class HookedSaturno(SaturnoClient):
    """The real client, with a hook that runs before each delivery starts."""

    before: Callable[[Report], Awaitable[None]] | None = None

    async def deliver(self, report: Report, **kwargs: Any) -> Any:
        if self.before is not None:
            await self.before(report)
        return await super().deliver(report, **kwargs)


# -- the harness ---------------------------------------------------------------------------


@dataclass
class Harness:
    """Builds a Lifecycle over the fakes and remembers what happened at the edges."""

    saturno: SaturnoEmulator
    session: aiohttp.ClientSession
    state_dir: Path
    clock: FakeClock = field(default_factory=FakeClock)
    runner: FakeRunner = field(default_factory=FakeRunner)
    notifier: RecordingNotifier = field(default_factory=RecordingNotifier)
    metadata: FakeMetadata | None = None
    instance: InstanceInfo = field(default_factory=instance)
    exit_code: int = EXIT_OK
    boot_id: str = BOOT_ID
    stops: list[tuple[AgentState, list[int | None]]] = field(default_factory=list)
    on_stop: Callable[[], Awaitable[None]] | None = None
    before_deliver: Callable[[Report], Awaitable[None]] | None = None
    life: Lifecycle | None = None

    def settings(self, **overrides: Any) -> Settings:
        values: dict[str, Any] = {
            "register_url": self.saturno.register_url,
            "done_url": self.saturno.done_url,
            "jwt_secret": Secret("x" * 40),
            "idle_timeout": 3600.0,
            "job_timeout": 3600.0,
            "shutdown_grace": 120.0,
            "notify_deadline": 60.0,
            "state_dir": self.state_dir,
        }
        values.update(overrides)
        return Settings(**values)

    def store(self) -> StateStore:
        return StateStore(self.state_dir)

    def build(self, record: AgentRecord | None = None, **overrides: Any) -> Lifecycle:
        store = self.store()
        opened = store.open()
        saturno = HookedSaturno(
            self.session,
            lambda: "saturno-token",
            clock=self.clock,
            backoff=Backoff(jitter=False),
        )
        saturno.before = self._before_deliver

        async def stop_vm() -> int:
            assert self.life is not None
            statuses = [r.status for r in self.saturno.reports_for("done")]
            self.stops.append((self.life.state, statuses))
            if self.on_stop is not None:
                await self.on_stop()
            return self.exit_code

        async def boot_facts() -> BootFacts:
            return BootFacts(self.boot_id, 8080, "1.2.3", True)

        parts = Collaborators(
            settings=self.settings(**overrides),
            instance=self.instance,
            metadata=cast("MetadataClient | None", self.metadata),
            store=store,
            saturno=saturno,
            run_job=self.runner,
            stop_vm=stop_vm,
            boot_facts=boot_facts,
            notifier=self.notifier,
            clock=self.clock,
            metadata_hosts=frozenset({"169.254.169.254", "metadata.google.internal"}),
        )
        self.life = Lifecycle(parts, record if record is not None else opened)
        return self.life

    async def _before_deliver(self, report: Report) -> None:
        if self.before_deliver is not None:
            await self.before_deliver(report)

    def saved(self) -> AgentRecord:
        """What a restart would read."""
        return self.store().open()

    def end_body(self) -> dict[str, Any]:
        (report,) = self.saturno.reports_for("done")
        body: dict[str, Any] = report.body
        return body

    def statuses(self) -> list[str]:
        lines = [line for message in self.notifier.sent for line in message.splitlines()]
        return [line.removeprefix("STATUS=") for line in lines if line.startswith("STATUS=")]


@pytest.fixture
async def h(tmp_path: Path) -> AsyncIterator[Harness]:
    saturno = SaturnoEmulator(authorization="saturno-token")
    async with served(saturno.app()) as running, aiohttp.ClientSession() as session:
        saturno.base_url = running.url
        yield Harness(saturno=saturno, session=session, state_dir=tmp_path / "state")


async def run_with_job(h: Harness, life: Lifecycle, job: JobSpec | None = None) -> int:
    """Start the life, post a job once the agent is idle, and return the exit code."""
    task = asyncio.create_task(life.run())
    await wait_until(lambda: life.state is AgentState.IDLE)
    offer = await life.offer(job or spec(), via="http")
    assert offer.outcome == "accepted"
    return await task


async def start_blocked_job(h: Harness) -> tuple[Lifecycle, asyncio.Task[int]]:
    """Start the life, post a job whose runner blocks, and return once the job runs."""
    h.runner.block = True
    life = h.build()
    task = asyncio.create_task(life.run())
    await wait_until(lambda: life.state is AgentState.IDLE)
    await life.offer(spec(), via="http")
    await h.runner.started.wait()
    return life, task


# -- the happy path ------------------------------------------------------------------------


async def test_happy_path(h: Harness) -> None:
    """Offer accepted, job run, end report done with arts and output, then stop; exit code."""
    h.exit_code = 0
    life = h.build()
    assert await run_with_job(h, life) == EXIT_OK
    (call,) = h.runner.calls
    assert call == (spec(), h.store().job_dir("ntd-1"))
    body = h.end_body()
    assert body["status"] == "done"
    assert body["error"] is None
    assert body["ntd_transaction_id"] == "ntd-1"
    assert body["no_transaction_id"] == "no-1"
    assert body["arts"] == 3
    assert body["output_uri"] == "file:///out/ntd-1"
    assert body["warnings"] == ["w1"]
    assert body["name"] == "vm-1"
    assert body["started_at"] == "2023-11-14T22:13:20.000Z"
    # stop_vm ran once, after the end report was delivered, in state stopping.
    assert h.stops == [(AgentState.STOPPING, [200])]
    assert h.clock.sleeps[-1] == 120.0
    assert life.state is AgentState.STOPPING


async def test_states_in_order(h: Harness) -> None:
    """The agent goes starting, registering, idle, busy, reporting, grace, stopping."""
    life = h.build()
    assert life.state is AgentState.STARTING
    await run_with_job(h, life)
    assert h.notifier.sent[0] == "READY=1\nSTATUS=starting"
    assert h.statuses() == [
        "starting",
        "registering",
        "idle",
        "busy",
        "reporting",
        "grace",
        "stopping",
    ]
    assert h.notifier.sent[-1] == "STOPPING=1"


async def test_systemd_hears_stopping_only_after_the_stop_request(h: Harness) -> None:
    """STOPPING=1 starts systemd's stop timeout, so it must not run during the stop request."""
    sent_during_stop: list[str] = []

    async def probe() -> None:
        sent_during_stop.extend(h.notifier.sent)

    h.on_stop = probe
    await run_with_job(h, h.build())
    assert "STOPPING=1" not in sent_during_stop
    assert h.notifier.sent[-1] == "STOPPING=1"


async def test_exit_code_comes_from_stop_vm(h: Harness) -> None:
    """run() returns what stop_vm returned (3: the VM could not be stopped)."""
    h.exit_code = EXIT_STOP_FAILED
    assert await run_with_job(h, h.build()) == EXIT_STOP_FAILED


async def test_everything_is_saved(h: Harness) -> None:
    """After the life, state_dir holds the finished job and both reports as delivered."""
    await run_with_job(h, h.build())
    saved = h.saved()
    assert saved.boot_id == BOOT_ID
    assert saved.job is not None
    assert saved.job.state is JobState.DONE
    assert saved.job.attempts == 1
    assert saved.job.arts == 3
    assert saved.register is not None
    assert saved.register.outcome == "delivered"
    assert saved.end is not None
    assert saved.end.outcome == "delivered"
    assert saved.end.key in h.saturno.idempotency_keys("done")


async def test_boot_report(h: Harness) -> None:
    """One boot report goes to register_url with this boot's facts and the instance's."""
    await run_with_job(h, h.build())
    (report,) = h.saturno.reports_for("register")
    assert report.body["boot_id"] == BOOT_ID
    assert report.body["port"] == 8080
    assert report.body["ip"] == "203.0.113.10"
    assert report.body["can_self_stop"] is True
    assert report.authorization == "saturno-token"


# -- offers ---------------------------------------------------------------------------------


async def test_acceptance_is_on_disk_before_the_answer(h: Harness) -> None:
    """When offer() answers accepted, a restart already knows the job."""
    life = h.build()
    assert await life.offer(spec(), via="http") == Offer(
        "accepted", "ntd-1", job_state=JobState.ACCEPTED
    )
    saved = h.saved()
    assert saved.job is not None
    assert saved.job.state is JobState.ACCEPTED
    assert saved.job.via == "http"


async def test_same_id_again_is_known_with_its_state(h: Harness) -> None:
    """Posting the same ntd_transaction_id again answers ``known`` with the job's state."""
    life, task = await start_blocked_job(h)
    again = await life.offer(spec(), via="http")
    assert again == Offer("known", "ntd-1", job_state=JobState.RUNNING)
    h.runner.release.set()
    await task
    assert len(h.runner.calls) == 1


async def test_second_id_is_refused_with_the_current_job(h: Harness) -> None:
    """Another id while a job holds the VM is refused (409) naming the current job."""
    life, task = await start_blocked_job(h)
    other = await life.offer(spec("ntd-2"), via="http")
    assert other.outcome == "refused"
    assert other.ntd_transaction_id == "ntd-2"
    assert other.reason == "another job holds this VM"
    assert other.current is not None
    assert other.current["ntd_transaction_id"] == "ntd-1"
    assert other.current["state"] == "running"
    h.runner.release.set()
    await task
    assert [c[0].ntd_transaction_id for c in h.runner.calls] == ["ntd-1"]


async def test_offers_while_reporting_and_stopping(h: Harness) -> None:
    """From reporting on, a new id is refused; the finished id is known with its final state."""
    answers: list[tuple[AgentState, Offer, Offer]] = []
    life = h.build()

    async def probe(report: Report | None = None) -> None:
        if report is None or report.kind == "done":
            answers.append(
                (
                    life.state,
                    await life.offer(spec("ntd-2"), via="http"),
                    await life.offer(spec("ntd-1"), via="http"),
                )
            )

    h.before_deliver = probe
    h.on_stop = probe
    await run_with_job(h, life)
    assert [state for state, _, _ in answers] == [AgentState.REPORTING, AgentState.STOPPING]
    for _, new, same in answers:
        assert new.outcome == "refused"
        assert same == Offer("known", "ntd-1", job_state=JobState.DONE)


async def test_offer_after_an_idle_end_is_refused(h: Harness) -> None:
    """After an idle_timeout end report exists, any job is refused: the agent is shutting down."""
    answers: list[Offer] = []
    life = h.build(idle_timeout=0.05)

    async def probe(report: Report | None = None) -> None:
        if report is None or report.kind == "done":
            answers.append(await life.offer(spec(), via="http"))

    h.before_deliver = probe
    h.on_stop = probe
    await life.run()
    assert [a.outcome for a in answers] == ["refused", "refused"]
    assert answers[0].reason == "the agent is shutting down"
    assert answers[0].current == {"state": "reporting"}
    assert h.runner.calls == []


async def test_status_view(h: Harness) -> None:
    """status() shows the state, the name, the job and the reports' progress, no bodies."""
    life = h.build()
    assert life.status() == {
        "state": "starting",
        "name": "vm-1",
        "job": None,
        "register_report": None,
        "end_report": None,
    }
    await run_with_job(h, life)
    status = life.status()
    assert status["state"] == "stopping"
    job = cast("dict[str, Any]", status["job"])
    assert job["state"] == "done"
    assert job["via"] == "http"
    assert status["register_report"] == {"kind": "register", "outcome": "delivered", "attempts": 1}
    assert status["end_report"] == {"kind": "done", "outcome": "delivered", "attempts": 1}
    json.dumps(status)


# -- outcomes --------------------------------------------------------------------------------


async def test_idle_timeout(h: Harness) -> None:
    """No job within idle_timeout: end report idle_timeout with null ids; no job runs."""
    life = h.build(idle_timeout=0.05)
    assert await life.run() == EXIT_OK
    body = h.end_body()
    assert body["status"] == "idle_timeout"
    assert body["ntd_transaction_id"] is None
    assert body["no_transaction_id"] is None
    assert body["arts"] == 0
    assert body["output_uri"] is None
    assert "no job arrived" in body["error"]
    assert h.runner.calls == []
    assert h.stops == [(AgentState.STOPPING, [200])]
    assert "busy" not in h.statuses()


async def test_job_error_fails_with_its_message(h: Harness) -> None:
    """A JobError ends the job failed, its message the report's error."""
    h.runner.error = JobError("zip_art: download refused: 10.0.0.1 is a private address")
    await run_with_job(h, h.build())
    body = h.end_body()
    assert body["status"] == "failed"
    assert body["error"] == "zip_art: download refused: 10.0.0.1 is a private address"
    assert body["arts"] == 0
    assert body["output_uri"] is None


async def test_unexpected_crash_fails_without_internals(h: Harness) -> None:
    """Any other exception fails the job with a generic sentence, not the exception's text."""
    h.runner.error = RuntimeError("/secret/path exploded")
    await run_with_job(h, h.build())
    body = h.end_body()
    assert body["status"] == "failed"
    assert body["error"] == "internal error (RuntimeError); see the VM's logs"


async def test_job_timeout(h: Harness) -> None:
    """A job running past job_timeout is cancelled and reported timeout."""
    h.runner.block = True
    await run_with_job(h, h.build(job_timeout=0.05))
    assert h.runner.cancelled
    body = h.end_body()
    assert body["status"] == "timeout"
    assert "job_timeout" in body["error"]
    saved = h.saved()
    assert saved.job is not None
    assert saved.job.state is JobState.TIMEOUT


async def test_preempted_during_the_job(h: Harness) -> None:
    """instance/preempted turning TRUE cancels the job and reports preempted at once."""
    h.metadata = FakeMetadata()
    _, task = await start_blocked_job(h)
    h.metadata.set("instance/preempted", "TRUE")
    assert await task == EXIT_OK
    assert h.runner.cancelled
    body = h.end_body()
    assert body["status"] == "preempted"
    assert body["ntd_transaction_id"] == "ntd-1"
    assert body["error"] == "GCE preempted the VM while the job ran"


async def test_sigterm_of_a_preempted_vm_sends_the_report_first(h: Harness) -> None:
    """GCE's SIGTERM can beat the watcher: asked once, preempted=TRUE still gets reported."""
    h.metadata = FakeMetadata()
    life, task = await start_blocked_job(h)
    h.metadata.values["instance/preempted"] = "TRUE"  # set, but the watcher not woken
    await life.before_signal_exit()
    body = h.end_body()
    assert body["status"] == "preempted"
    assert body["ntd_transaction_id"] == "ntd-1"
    task.cancel()


async def test_sigterm_of_a_running_vm_exits_without_a_report(h: Harness) -> None:
    """A plain SIGTERM (Saturno or an operator stopping the VM) sends no end report."""
    h.metadata = FakeMetadata()
    life, task = await start_blocked_job(h)
    await life.before_signal_exit()
    assert h.saturno.reports_for("done") == []
    task.cancel()


async def test_preempted_while_idle(h: Harness) -> None:
    """Preemption before any job ends the wait with a preempted report and null ids."""
    h.metadata = FakeMetadata()
    life = h.build()
    task = asyncio.create_task(life.run())
    await wait_until(lambda: life.state is AgentState.IDLE)
    h.metadata.set("instance/preempted", "TRUE")
    await task
    body = h.end_body()
    assert body["status"] == "preempted"
    assert body["ntd_transaction_id"] is None
    assert h.runner.calls == []


async def test_preempted_at_boot_takes_no_job(h: Harness) -> None:
    """A VM already preempted at boot reports preempted without waiting for a job."""
    h.instance = instance(preempted=True)
    life = h.build()
    assert await life.run() == EXIT_OK
    body = h.end_body()
    assert body["status"] == "preempted"
    assert body["ntd_transaction_id"] is None
    assert body["error"] == "the VM was already preempted at boot"
    assert h.runner.calls == []
    assert (await life.offer(spec(), via="http")).outcome == "refused"


async def test_job_by_metadata_attribute(h: Harness) -> None:
    """The notraining-job instance attribute is taken as a job, via metadata."""
    h.metadata = FakeMetadata()
    life = h.build()
    task = asyncio.create_task(life.run())
    await wait_until(lambda: life.state is AgentState.IDLE)
    job = {"ntd_transaction_id": "ntd-1", "no_transaction_id": "no-1", "zip_art": spec().zip_art}
    h.metadata.set("instance/attributes/", json.dumps({"notraining-job": json.dumps(job)}))
    await task
    ((got, _),) = h.runner.calls
    assert got.ntd_transaction_id == "ntd-1"
    saved = h.saved()
    assert saved.job is not None
    assert saved.job.via == "metadata"


async def test_bad_metadata_job_is_ignored(h: Harness, caplog: pytest.LogCaptureFixture) -> None:
    """An invalid notraining-job attribute is logged and not taken; a good one later is."""
    h.metadata = FakeMetadata()
    life = h.build()
    task = asyncio.create_task(life.run())
    await wait_until(lambda: life.state is AgentState.IDLE)
    bad = {"ntd_transaction_id": "ntd-1", "zip_art": "http://169.254.169.254/x"}
    with caplog.at_level(logging.ERROR, logger="notraining_agent.life.lifecycle"):
        h.metadata.set("instance/attributes/", json.dumps({"notraining-job": json.dumps(bad)}))
        await wait_until(lambda: "notraining-job refused" in caplog.text)
    assert life.state is AgentState.IDLE
    assert life.status()["job"] is None
    good = {"ntd_transaction_id": "ntd-2", "zip_art": spec().zip_art}
    h.metadata.set("instance/attributes/", json.dumps({"notraining-job": json.dumps(good)}))
    await task
    assert [c[0].ntd_transaction_id for c in h.runner.calls] == ["ntd-2"]


async def test_state_published_as_guest_attribute(h: Harness) -> None:
    """The agent's state reaches guest attribute notraining/state, up to stopping."""
    h.metadata = metadata = FakeMetadata()

    async def published_stopping() -> None:
        await wait_until(lambda: bool(metadata.guest) and metadata.guest[-1] == "stopping")

    h.on_stop = published_stopping
    await run_with_job(h, h.build())
    order = ["starting", "registering", "idle", "busy", "reporting", "grace", "stopping"]
    assert metadata.guest == sorted(set(metadata.guest), key=order.index)


# -- reports ---------------------------------------------------------------------------------


async def test_undeliverable_end_report_still_stops(h: Harness) -> None:
    """A refused end report is saved as refused and the VM still stops."""
    h.saturno.fail("done", 400, times=None)
    await run_with_job(h, h.build())
    assert len(h.stops) == 1
    saved = h.saved()
    assert saved.end is not None
    assert saved.end.outcome == "refused"


async def test_expired_end_report_still_stops(h: Harness) -> None:
    """An end report Saturno never takes expires after notify_deadline; the VM still stops."""
    h.saturno.fail("done", 503, times=None)
    await run_with_job(h, h.build(notify_deadline=30.0))
    assert len(h.stops) == 1
    saved = h.saved()
    assert saved.end is not None
    assert saved.end.outcome == "expired"
    assert saved.end.attempts == len(h.saturno.reports_for("done")) > 1


async def test_local_mode_skips_reports(h: Harness) -> None:
    """Without Saturno URLs (local mode) reports are skipped and the life goes on."""
    life = h.build(register_url=None, done_url=None)
    task = asyncio.create_task(life.run())
    await wait_until(lambda: life.status()["register_report"] is not None)
    await life.offer(spec(), via="http")
    assert await task == EXIT_OK
    assert h.saturno.reports == []
    saved = h.saved()
    assert saved.end is not None
    assert saved.end.outcome == "skipped"


async def test_cancel_is_a_clean_stop_and_the_job_runs_again(h: Harness) -> None:
    """Cancelling run() (SIGTERM) cancels the job; a restart runs it again as attempt 2."""
    _, task = await start_blocked_job(h)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert h.runner.cancelled
    assert h.stops == []
    saved = h.saved()
    assert saved.job is not None
    assert saved.job.state is JobState.RUNNING
    assert saved.job.attempts == 1

    h.runner = FakeRunner()
    assert await h.build(saved).run() == EXIT_OK
    assert len(h.runner.calls) == 1
    assert h.end_body()["status"] == "done"
    again = h.saved()
    assert again.job is not None
    assert again.job.attempts == 2


# -- restarts --------------------------------------------------------------------------------


def job_record(state: JobState, attempts: int, **overrides: Any) -> JobRecord:
    values: dict[str, Any] = {
        "spec": spec(),
        "state": state,
        "via": "http",
        "accepted_at": T0 - 100,
        "attempts": attempts,
        "started_at": T0 - 50 if attempts else None,
    }
    values.update(overrides)
    return JobRecord(**values)


async def restart(h: Harness, record: AgentRecord) -> int:
    """Save ``record`` as a previous run would have, then live again from it."""
    store = h.store()
    store.open()
    await store.save(record)
    return await h.build(h.saved()).run()


async def test_restart_runs_an_interrupted_job_again(h: Harness) -> None:
    """A job found running (attempt 1) runs again from its start, as attempt 2."""
    assert await restart(h, AgentRecord(job=job_record(JobState.RUNNING, 1))) == EXIT_OK
    assert len(h.runner.calls) == 1
    saved = h.saved()
    assert saved.job is not None
    assert saved.job.attempts == 2
    assert saved.job.state is JobState.DONE
    assert h.end_body()["status"] == "done"


async def test_restart_runs_an_accepted_job(h: Harness) -> None:
    """A job accepted but never started runs on restart, as attempt 1."""
    await restart(h, AgentRecord(job=job_record(JobState.ACCEPTED, 0)))
    assert len(h.runner.calls) == 1
    saved = h.saved()
    assert saved.job is not None
    assert saved.job.attempts == 1


async def test_restart_after_three_starts_fails_without_running(h: Harness) -> None:
    """A job already started 3 times is reported failed and not started again."""
    await restart(h, AgentRecord(job=job_record(JobState.RUNNING, 3)))
    assert h.runner.calls == []
    body = h.end_body()
    assert body["status"] == "failed"
    assert "started 3 times" in body["error"]


async def test_restart_delivers_a_finished_jobs_pending_report(h: Harness) -> None:
    """A finished job whose end report was pending is reported (same key), not re-run."""
    job = job_record(JobState.DONE, 1, finished_at=T0 - 10, arts=5, output_uri="gs://b/r")
    end = new_report("done", h.saturno.done_url, end_body_for_job(job, name="vm-1"), T0 - 10)
    await restart(h, AgentRecord(boot_id=BOOT_ID, job=job, end=end))
    assert h.runner.calls == []
    (report,) = h.saturno.reports_for("done")
    assert report.idempotency_key == end.key
    assert report.body["arts"] == 5
    assert h.stops and h.stops[0][1] == [200]


async def test_restart_with_a_final_job_but_no_report(h: Harness) -> None:
    """A job saved as final without its end report gets one, and is not re-run."""
    job = job_record(JobState.FAILED, 1, finished_at=T0 - 10, error="bad zip")
    await restart(h, AgentRecord(job=job))
    assert h.runner.calls == []
    body = h.end_body()
    assert body["status"] == "failed"
    assert body["error"] == "bad zip"


async def test_restart_after_a_delivered_end_only_stops(h: Harness) -> None:
    """With the end report already delivered, a restart sends nothing and goes to stop."""
    job = job_record(JobState.DONE, 1, finished_at=T0 - 10)
    end = replace(
        new_report("done", h.saturno.done_url, end_body_for_job(job, name="vm-1"), T0 - 10),
        outcome="delivered",
    )
    await restart(h, AgentRecord(boot_id=BOOT_ID, job=job, end=end))
    assert h.saturno.reports == []
    assert h.runner.calls == []
    assert len(h.stops) == 1


async def test_register_report_once_per_boot(h: Harness) -> None:
    """A restart in the same boot does not send the boot report again; a new boot does."""
    await run_with_job(h, h.build())
    first = h.saved()
    assert len(h.saturno.reports_for("register")) == 1

    # Same boot: the agent restarts from a record that already has this boot's report.
    restarted = AgentRecord(boot_id=first.boot_id, register=first.register)
    await restart(h, replace(restarted, job=job_record(JobState.ACCEPTED, 0, spec=spec("ntd-2"))))
    assert len(h.saturno.reports_for("register")) == 1

    # A reboot: a new boot id, a new boot report with a new key.
    h.boot_id = "boot-2"
    await restart(h, replace(restarted, job=job_record(JobState.ACCEPTED, 0, spec=spec("ntd-3"))))
    registers = h.saturno.reports_for("register")
    assert len(registers) == 2
    assert registers[1].body["boot_id"] == "boot-2"
    assert registers[0].idempotency_key != registers[1].idempotency_key


async def test_pending_register_report_is_resent_with_its_key(h: Harness) -> None:
    """A boot report not yet delivered before a restart is sent with its original key."""
    pending = new_report("register", h.saturno.register_url, {"boot_id": BOOT_ID}, T0)
    await restart(
        h,
        AgentRecord(boot_id=BOOT_ID, register=pending, job=job_record(JobState.ACCEPTED, 0)),
    )
    (report,) = h.saturno.reports_for("register")
    assert report.idempotency_key == pending.key
