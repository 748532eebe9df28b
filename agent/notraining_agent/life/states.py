"""Agent and job states (contract section 4), and what the receiver asks of the lifecycle."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Literal, Protocol

from notraining_agent.job.spec import JobSpec


class AgentState(StrEnum):
    """Where the agent is in its one-job life; shown in /healthz, /status and a guest attribute."""

    STARTING = "starting"
    REGISTERING = "registering"
    IDLE = "idle"
    BUSY = "busy"
    REPORTING = "reporting"
    GRACE = "grace"
    STOPPING = "stopping"

    @property
    def takes_jobs(self) -> bool:
        """A new job is taken only before one started and before reporting (section 4)."""
        return self in (AgentState.STARTING, AgentState.REGISTERING, AgentState.IDLE)


class JobState(StrEnum):
    """A job's state; the final ones are also the end report's ``status``."""

    ACCEPTED = "accepted"
    RUNNING = "running"
    DONE = "done"
    FAILED = "failed"
    TIMEOUT = "timeout"
    PREEMPTED = "preempted"

    @property
    def final(self) -> bool:
        """True once the job has ended one way or another."""
        return self not in (JobState.ACCEPTED, JobState.RUNNING)


@dataclass(frozen=True)
class Offer:
    """The lifecycle's answer to a posted job.

    ``accepted``: a new job was taken. ``known``: the same ``ntd_transaction_id`` was
    posted before; ``job_state`` is where it is. ``refused``: another job holds the VM
    or it is shutting down; ``reason`` says which, ``current`` names the holder.
    """

    outcome: Literal["accepted", "known", "refused"]
    ntd_transaction_id: str
    job_state: JobState | None = None
    reason: str = ""
    current: Mapping[str, object] | None = None


class JobDesk(Protocol):
    """What the receiver needs from the lifecycle: its state, a status view, and a desk for jobs."""

    @property
    def state(self) -> AgentState: ...

    def status(self) -> Mapping[str, object]:
        """The /status body: agent state and the current job (no secrets)."""
        ...

    async def offer(self, spec: JobSpec, *, via: str) -> Offer:
        """Take ``spec`` if the VM is free; ``via`` is "http" or "metadata", for the logs."""
        ...
