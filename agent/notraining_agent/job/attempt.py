"""One start of a job, bounded by ``job_timeout`` and preemption, and how it ended."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from notraining_agent.errors import AgentError
from notraining_agent.life.states import JobState
from notraining_agent.util.urls import scrub_urls

if TYPE_CHECKING:  # the runner's modules load after the boot report, not at import
    from notraining_agent.job.runner import JobOutcome

log = logging.getLogger(__name__)

CANCEL_WAIT = 5.0
"""How long a cancelled job may take to clean up (its worker processes are killed)."""


@dataclass(frozen=True)
class AttemptResult:
    """The final state, the end report's ``error``, and the outcome when it was ``done``."""

    state: JobState
    error: str | None = None
    outcome: JobOutcome | None = None


async def run_attempt(
    work: Awaitable[JobOutcome], *, job_timeout: float, preempted: asyncio.Event
) -> AttemptResult:
    """Run ``work`` until it ends, ``job_timeout`` passes or ``preempted`` is set.

    An agent error becomes ``failed`` with its message (each one is a sentence for an
    operator); any other exception is a bug, logged with its traceback and reported
    as ``failed`` without internals.
    """
    task = asyncio.ensure_future(work)
    preemption = asyncio.ensure_future(preempted.wait())
    try:
        await asyncio.wait({task, preemption}, timeout=job_timeout, return_when="FIRST_COMPLETED")
    finally:
        preemption.cancel()
        if not task.done():
            task.cancel()
            await asyncio.wait({task}, timeout=CANCEL_WAIT)
    if not task.done() or task.cancelled():
        if preempted.is_set():
            return AttemptResult(JobState.PREEMPTED, "GCE preempted the VM while the job ran")
        return AttemptResult(
            JobState.TIMEOUT, f"the job ran longer than job_timeout ({job_timeout:.0f} s)"
        )
    exc = task.exception()
    if isinstance(exc, AgentError):  # JobError, or e.g. a missing extra (ConfigError)
        return AttemptResult(JobState.FAILED, scrub_urls(str(exc)))
    if exc is not None:
        log.error("job crashed (%s)", type(exc).__name__, exc_info=exc)
        return AttemptResult(
            JobState.FAILED, f"internal error ({type(exc).__name__}); see the VM's logs"
        )
    return AttemptResult(JobState.DONE, outcome=task.result())


def gave_up(attempts: int) -> str:
    """The end report's error for a job whose every start was cut short."""
    return (
        f"the job was started {attempts} times and never finished (the agent was killed or "
        "crashed each time); not starting it again"
    )
