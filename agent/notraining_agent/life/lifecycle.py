"""The state machine of the agent's one-job life, and the owner of every task in it.

::

    starting ─► registering ─► idle ─► busy ─► reporting ─► grace ─► stopping
                     └───────────┴─ idle_timeout / preempted ─┘

Every transition of the job and every report is saved to ``state_dir`` before it
takes effect, so a restart (crash, kill -9, reboot) goes on from the last saved
state: a job accepted or running is run again (at most 3 starts), a finished
job's report is delivered, never the job re-run.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from notraining_agent.config import Settings
from notraining_agent.gce import InstanceInfo
from notraining_agent.gce.metadata import MetadataClient
from notraining_agent.host.guest_state import StatePublisher
from notraining_agent.host.systemd import Notifier
from notraining_agent.host.watchers import (
    ask_preempted,
    parse_job_attribute,
    watch_job_attribute,
    watch_maintenance,
    watch_preempted,
)
from notraining_agent.job.attempt import gave_up, run_attempt
from notraining_agent.job.spec import JobSpec
from notraining_agent.life import reports
from notraining_agent.life.ledger import Ledger
from notraining_agent.life.saturno import SaturnoClient
from notraining_agent.life.states import AgentState, JobState, Offer
from notraining_agent.life.store import MAX_ATTEMPTS, AgentRecord, JobRecord, StateStore
from notraining_agent.life.tasks import TaskOwner
from notraining_agent.logs import job_context
from notraining_agent.util.retry import Clock

if TYPE_CHECKING:  # the runner's modules load after the boot report, not at import
    from notraining_agent.job.runner import JobOutcome

log = logging.getLogger(__name__)

JobRunner = Callable[[JobSpec, Path], Awaitable["JobOutcome"]]

PREEMPTED_REPORT_WINDOW = 20.0
"""On SIGTERM of a preempted VM, how long its ``preempted`` report may take: GCE gives the VM
about 30 s, and the unit's TimeoutStopSec is 25 s."""
PREEMPTED_ASK_TIMEOUT = 2.0


@dataclass(frozen=True)
class BootFacts:
    """What the boot report adds to the metadata: checked at boot, outside the lifecycle."""

    boot_id: str
    port: int
    agent_version: str
    can_self_stop: bool | None  # None: IAM could not be asked (see gce.permissions.can_self_stop)
    identity_token: str | None = None


@dataclass(frozen=True)
class Collaborators:
    """Everything the lifecycle talks to; built by :mod:`.daemon`, faked in tests."""

    settings: Settings
    instance: InstanceInfo
    metadata: MetadataClient | None
    store: StateStore
    saturno: SaturnoClient
    run_job: JobRunner
    stop_vm: Callable[[], Awaitable[int]]
    boot_facts: Callable[[], Awaitable[BootFacts]]
    notifier: Notifier
    clock: Clock
    metadata_hosts: frozenset[str]
    warm_up: Callable[[], Awaitable[object]] | None = None
    """Called once the boot report is delivered: loads what only a job needs."""


class Lifecycle:
    """Runs the one-job life; also the receiver's :class:`~notraining_agent.life.states.JobDesk`."""

    def __init__(self, parts: Collaborators, record: AgentRecord) -> None:
        self._p = parts
        self._settings = parts.settings
        self._ledger = Ledger(
            record,
            store=parts.store,
            saturno=parts.saturno,
            settings=parts.settings,
            clock=parts.clock,
        )
        self._state = AgentState.STARTING
        self._tasks = TaskOwner()
        self._job_ready = asyncio.Event()
        self._preempted = asyncio.Event()
        self._end_delivered = asyncio.Event()
        self._publisher = StatePublisher(parts.notifier, parts.metadata)
        self._ready_since = parts.clock.wall()

    @property
    def _record(self) -> AgentRecord:
        """The record the ledger saves: one object, so nothing here can drift from it."""
        return self._ledger.record

    # -- the receiver's desk -------------------------------------------------

    @property
    def state(self) -> AgentState:
        """The agent's current state."""
        return self._state

    def status(self) -> Mapping[str, object]:
        """Agent state, the job, and where the reports are; no secrets."""
        job = self._record.job
        return {
            "state": self._state.value,
            "name": self._p.instance.name,
            "job": job.public() if job is not None else None,
            "register_report": reports.summary(self._record.register),
            "end_report": reports.summary(self._record.end),
        }

    async def offer(self, spec: JobSpec, *, via: str) -> Offer:
        """Take ``spec`` if the VM is free; the acceptance is on disk before the answer."""
        held = self._record.job
        if held is not None:
            if held.spec.ntd_transaction_id == spec.ntd_transaction_id:
                return Offer("known", spec.ntd_transaction_id, job_state=held.state)
            return Offer(
                "refused",
                spec.ntd_transaction_id,
                reason="another job holds this VM",
                current=held.public(),
            )
        if not self._state.takes_jobs or self._record.end is not None:
            return Offer(
                "refused",
                spec.ntd_transaction_id,
                reason="the agent is shutting down",
                current={"state": self._state.value},
            )
        job = JobRecord(spec=spec, state=JobState.ACCEPTED, via=via, accepted_at=self._now())
        self._record.job = job
        try:
            await self._ledger.commit()  # raises: no 200 for a job not on disk
        except BaseException:
            self._record.job = None
            raise
        log.info("job accepted via %s", via, extra=_job_extra(spec, event="job_accepted"))
        self._job_ready.set()
        return Offer("accepted", spec.ntd_transaction_id, job_state=JobState.ACCEPTED)

    # -- the life --------------------------------------------------------------

    async def run(self) -> int:
        """Live the whole life and return the exit code; cancelling it is a clean stop."""
        self._ready_since = self._now()
        self._tasks.spawn(self._publisher.write_guest_attribute(), "guest-attribute")
        self._tasks.spawn(self._publisher.keep_watchdog_fed(), "watchdog")
        if self._p.metadata is not None:
            self._tasks.spawn(watch_preempted(self._p.metadata, self._on_preempted), "preempted")
            self._tasks.spawn(watch_maintenance(self._p.metadata), "maintenance")
            self._tasks.spawn(
                watch_job_attribute(self._p.metadata, self._on_job_attribute), "job-attr"
            )
        try:
            self._p.notifier.ready(self._state.value)
            await self._live()
            await self._deliver_end_report()
            self._end_delivered.set()
            self._set_state(AgentState.GRACE)
            log.info("waiting %.0f s for Saturno to stop the VM", self._settings.shutdown_grace)
            await self._p.clock.sleep(self._settings.shutdown_grace)
            self._set_state(AgentState.STOPPING)
            code = await self._p.stop_vm()
            # Only now: STOPPING=1 starts the unit's TimeoutStopSec, and the stop request
            # (client import, retries, operation wait) may outlast it; a real boot was
            # killed mid-request that way.
            self._p.notifier.stopping()
            return code
        finally:
            await self._tasks.close()

    async def before_signal_exit(self, window: float = PREEMPTED_REPORT_WINDOW) -> None:
        """On SIGTERM: a preempted VM first sends its ``preempted`` end report (within ``window``).

        GCE's ACPI soft-off and ``instance/preempted`` = TRUE come together, and the SIGTERM
        often wins the race with the watcher (seen on a real boot): so ask once, briefly.
        """
        if self._end_delivered.is_set():
            return
        if not self._preempted.is_set() and not await self._asks_preempted():
            return
        log.info(
            "SIGTERM on a preempted VM: sending the preempted report first (at most %.0f s)",
            window,
            extra={"event": "preempted"},
        )
        self._preempted.set()
        try:
            await asyncio.wait_for(self._end_delivered.wait(), window)
        except TimeoutError:
            log.warning("the preempted report was not delivered within %.0f s", window)

    async def _asks_preempted(self) -> bool:
        metadata = self._p.metadata
        return metadata is not None and await ask_preempted(metadata, timeout=PREEMPTED_ASK_TIMEOUT)

    async def _live(self) -> None:
        """From boot to the moment an end report exists (and is saved)."""
        record = self._record
        if record.end is not None:
            log.info(
                "restarted after the end: %s report is %s", record.end.kind, record.end.outcome
            )
            return
        self._tasks.spawn(self._register(), "register")
        if record.job is None and self._p.instance.preempted:
            await self._end_without_job("preempted", "the VM was already preempted at boot")
            return
        if record.job is None:
            self._set_state(AgentState.REGISTERING)
            if not await self._wait_for_job():
                return
        assert record.job is not None  # noqa: S101 - _wait_for_job returns True only with a job
        await self._run_job(record.job)

    async def _wait_for_job(self) -> bool:
        """True when a job came; False when idle_timeout or preemption ended the wait."""
        job = asyncio.ensure_future(self._job_ready.wait())
        preempted = asyncio.ensure_future(self._preempted.wait())
        try:
            remaining = self._ready_since + self._settings.idle_timeout - self._now()
            await asyncio.wait(
                {job, preempted}, timeout=max(0.0, remaining), return_when="FIRST_COMPLETED"
            )
        finally:
            job.cancel()
            preempted.cancel()
        if self._record.job is not None:  # also when an offer was being saved as time ran out
            return True
        if self._preempted.is_set():
            await self._end_without_job("preempted", "GCE preempted the VM before a job came")
        else:
            idle = self._settings.idle_timeout
            await self._end_without_job("idle_timeout", f"no job arrived within {idle:.0f} s")
        return False

    async def _run_job(self, job: JobRecord) -> None:
        """Run the job (at most MAX_ATTEMPTS starts), bounded by job_timeout and preemption."""
        with job_context(job.spec.ntd_transaction_id, job.spec.no_transaction_id):
            self._set_state(AgentState.BUSY)
            if job.state.final:
                log.info("job already %s before the restart; reporting it", job.state.value)
                await self._finish(job, job.state, job.error)
                return
            if job.attempts >= MAX_ATTEMPTS:
                await self._finish(job, JobState.FAILED, gave_up(job.attempts))
                return
            job.attempts += 1
            job.state, job.started_at = JobState.RUNNING, self._now()
            await self._ledger.save()
            log.info(
                "job started (attempt %d of %d)",
                job.attempts,
                MAX_ATTEMPTS,
                extra={"event": "job_started"},
            )
            result = await run_attempt(
                self._p.run_job(job.spec, self._p.store.job_dir(job.spec.ntd_transaction_id)),
                job_timeout=self._settings.job_timeout,
                preempted=self._preempted,
            )
            if result.outcome is not None:
                job.arts, job.output_uri = result.outcome.arts, result.outcome.output_uri
                job.warnings = list(result.outcome.warnings)
            await self._finish(job, result.state, result.error)

    async def _finish(self, job: JobRecord, state: JobState, error: str | None) -> None:
        """Save the final state and the end report in one write, before delivering it."""
        job.state, job.error = state, error
        job.finished_at = job.finished_at or self._now()
        body = reports.end_body_for_job(job, name=self._p.instance.name)
        self._record.end = self._ledger.new_report("done", body)
        await self._ledger.save()
        log.info(
            "job %s%s",
            state.value,
            f": {error}" if error else "",
            extra={"event": "job_finished", "status": state.value},
        )

    async def _end_without_job(self, status: str, error: str) -> None:
        body = reports.end_body_without_job(
            status, error, name=self._p.instance.name, since=self._ready_since, now=self._now()
        )
        self._record.end = self._ledger.new_report("done", body)
        await self._ledger.save()
        log.info(
            "ending without a job: %s", error, extra={"event": "job_finished", "status": status}
        )

    async def _deliver_end_report(self) -> None:
        end = self._record.end
        assert end is not None  # noqa: S101 - _live always leaves an end report
        self._set_state(AgentState.REPORTING)
        await self._ledger.deliver(end)

    async def _register(self) -> None:
        """Deliver this boot's report (once per boot) in the background."""
        facts = await self._p.boot_facts()
        record = self._record
        if record.register is None or record.boot_id != facts.boot_id:
            body = reports.boot_body(
                self._p.instance,
                boot_id=facts.boot_id,
                port=facts.port,
                agent_version=facts.agent_version,
                can_self_stop=facts.can_self_stop,
                identity_token=facts.identity_token,
            )
            record.boot_id = facts.boot_id
            record.register = self._ledger.new_report("register", body)
            await self._ledger.save()
        await self._ledger.deliver(record.register)
        if self._state is AgentState.REGISTERING:
            self._set_state(AgentState.IDLE)
        if self._p.warm_up is not None:  # after the boot report, never before it (issue 12)
            await self._p.warm_up()

    # -- events from the watchers ---------------------------------------------

    async def _on_preempted(self) -> None:
        self._preempted.set()

    async def _on_job_attribute(self, raw: str) -> None:
        spec = parse_job_attribute(
            raw,
            allowed_hosts=self._settings.allowed_url_hosts,
            metadata_hosts=self._p.metadata_hosts,
        )
        if spec is None:
            return
        offer = await self.offer(spec, via="metadata")
        if offer.outcome == "refused":
            log.warning("attribute notraining-job not taken: %s", offer.reason)

    # -- state, persistence ---------------------------------------------------

    def _set_state(self, state: AgentState) -> None:
        if state is self._state:
            return
        log.info(
            "state %s -> %s",
            self._state.value,
            state.value,
            extra={"event": "state", "state": state.value},
        )
        self._state = state
        self._publisher.publish(state)

    def _now(self) -> float:
        return self._p.clock.wall()


def _job_extra(spec: JobSpec, **fields: Any) -> dict[str, Any]:
    return {
        "ntd_transaction_id": spec.ntd_transaction_id,
        "no_transaction_id": spec.no_transaction_id,
        **fields,
    }
