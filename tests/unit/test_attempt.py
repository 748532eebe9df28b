"""One start of a job: done, failed, crashed, timed out or preempted."""

from __future__ import annotations

import asyncio

from notraining_agent.errors import ConfigError, InputRefusedError
from notraining_agent.job.attempt import gave_up, run_attempt
from notraining_agent.job.runner import JobOutcome
from notraining_agent.life.states import JobState

OUTCOME = JobOutcome(arts=3, output_uri="file:///r/x", warnings=("w",))


async def test_done_carries_the_outcome() -> None:
    """A job that returns is done, with its outcome."""

    async def work() -> JobOutcome:
        return OUTCOME

    result = await run_attempt(work(), job_timeout=5, preempted=asyncio.Event())
    assert (result.state, result.error, result.outcome) == (JobState.DONE, None, OUTCOME)


async def test_job_error_is_failed_with_its_message() -> None:
    """A JobError's message becomes the end report's error."""

    async def work() -> JobOutcome:
        raise InputRefusedError("zip_art x refused: it is HTML")

    result = await run_attempt(work(), job_timeout=5, preempted=asyncio.Event())
    assert (result.state, result.error) == (JobState.FAILED, "zip_art x refused: it is HTML")


async def test_a_bug_is_failed_without_internals() -> None:
    """Any other exception is reported as an internal error, naming only its type."""

    async def work() -> JobOutcome:
        raise KeyError("secret detail")

    result = await run_attempt(work(), job_timeout=5, preempted=asyncio.Event())
    assert result.state is JobState.FAILED
    assert result.error == "internal error (KeyError); see the VM's logs"


async def test_timeout_cancels_the_job() -> None:
    """Past job_timeout the job is cancelled and the attempt is a timeout."""
    cancelled = asyncio.Event()

    async def work() -> JobOutcome:
        try:
            await asyncio.sleep(60)
        finally:
            cancelled.set()
        return OUTCOME

    result = await run_attempt(work(), job_timeout=0.05, preempted=asyncio.Event())
    assert result.state is JobState.TIMEOUT
    assert "job_timeout" in (result.error or "")
    assert cancelled.is_set()


async def test_preemption_cancels_the_job() -> None:
    """Preemption during the job cancels it and the attempt is preempted."""
    preempted = asyncio.Event()

    async def work() -> JobOutcome:
        await asyncio.sleep(60)
        return OUTCOME

    asyncio.get_running_loop().call_later(0.05, preempted.set)
    result = await run_attempt(work(), job_timeout=30, preempted=preempted)
    assert result.state is JobState.PREEMPTED


def test_gave_up_names_the_count() -> None:
    """The give-up sentence says how many starts there were."""
    assert gave_up(3).startswith("the job was started 3 times")


async def test_an_agent_error_keeps_its_message() -> None:
    """A ConfigError met mid-job (e.g. a missing extra) reaches the end report as written."""

    async def work() -> JobOutcome:
        raise ConfigError("install notraining-agent[gcs] to publish to gs://")

    result = await run_attempt(work(), job_timeout=5, preempted=asyncio.Event())
    assert (result.state, result.error) == (
        JobState.FAILED,
        "install notraining-agent[gcs] to publish to gs://",
    )
