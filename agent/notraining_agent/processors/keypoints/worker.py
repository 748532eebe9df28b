"""CPU-bound stages in child processes that ``job_timeout`` and SIGTERM really stop.

A thread cannot be interrupted and a process pool cannot cancel a running task, so
each stage runs as plain ``python -m notraining_agent.processors.keypoints`` children
owned by the awaiting coroutine. They report JSON lines on stdout; when the coroutine
is cancelled they get SIGTERM at once (sent before any await, so a second cancel
cannot skip it) and SIGKILL after a short grace. A child also exits by itself when
its stdin closes, which is how it notices that the agent died (even by SIGKILL).
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import json
import logging
import os
import sys
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from notraining_agent.errors import ProcessorError

log = logging.getLogger(__name__)

WORKER_MODULE = "notraining_agent.processors.keypoints"
TERMINATE_GRACE = 2.0
"""Seconds a child has to die after SIGTERM before it gets SIGKILL."""
STDERR_TAIL = 2000
"""Characters of a failed child's stderr quoted in the job's error."""
SINGLE_THREAD_ENV = {"OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
"""One thread per child: parallelism comes from the children, and BLAS threads fighting
over the same cores made matching several times slower."""

Event = dict[str, Any]


def worker_count(requested: int | None, items: int) -> int:
    """How many children a stage uses: the CPUs this process may use, at most one per item."""
    available = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None
    cpus = requested or available or os.cpu_count() or 1
    return max(1, min(cpus, items))


def child_env(environ: Mapping[str, str]) -> dict[str, str]:
    """The children's environment: ours, single-threaded, able to import this package."""
    env = dict(environ)
    env.update(SINGLE_THREAD_ENV)
    root = str(Path(__file__).resolve().parents[3])
    env["PYTHONPATH"] = os.pathsep.join(p for p in (root, env.get("PYTHONPATH", "")) if p)
    return env


def command(stage: str, plan: Path, shard: int, shards: int) -> list[str]:
    """The child's command line: this interpreter, the worker module, the stage's shard."""
    return [sys.executable, "-m", WORKER_MODULE, stage, str(plan), str(shard), str(shards)]


async def run_stage(
    stage: str,
    plan: Path,
    shards: int,
    on_event: Callable[[Event], None],
    *,
    environ: Mapping[str, str] | None = None,
    on_spawn: Callable[[int], None] | None = None,
) -> None:
    """Run ``stage`` over ``shards`` children and feed their events to ``on_event``.

    Returns when every child exited 0; ProcessorError (with the child's stderr) when
    one failed, the others being stopped; stops every child when cancelled.
    """
    env = child_env(os.environ if environ is None else environ)
    children: list[asyncio.subprocess.Process] = []
    try:
        for shard in range(shards):
            child = await asyncio.create_subprocess_exec(
                *command(stage, plan, shard, shards),
                stdin=asyncio.subprocess.PIPE,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.PIPE,
                env=env,
            )
            children.append(child)
            if on_spawn is not None:
                on_spawn(child.pid)
        try:
            async with asyncio.TaskGroup() as group:
                for shard, child in enumerate(children):
                    group.create_task(_follow(stage, shard, child, on_event))
        except* ProcessorError as failures:
            raise failures.exceptions[0] from None
    finally:
        await _stop(children)


async def _follow(
    stage: str, shard: int, child: asyncio.subprocess.Process, on_event: Callable[[Event], None]
) -> None:
    assert child.stdout is not None and child.stderr is not None  # noqa: S101 - PIPE above
    tail: collections.deque[str] = collections.deque(maxlen=40)

    async def drain_stderr() -> None:
        assert child.stderr is not None  # noqa: S101 - PIPE above
        async for raw in child.stderr:
            tail.append(raw.decode("utf-8", "replace").rstrip())

    stderr_task = asyncio.create_task(drain_stderr())
    try:
        async for raw in child.stdout:
            line = raw.decode("utf-8", "replace").strip()
            if not line.startswith("{"):
                continue  # a library printing to stdout; not ours
            try:
                event = json.loads(line)
            except ValueError:
                log.warning(
                    "keypoints %s worker %d printed a bad event: %.200s", stage, shard, line
                )
                continue
            on_event(event)
        code = await child.wait()
        await stderr_task
    finally:
        stderr_task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await stderr_task
    if code != 0:
        # The job's error is one sentence: the child's last line (the exception, usually);
        # the log keeps the whole tail for whoever debugs it.
        output = "\n".join(tail)[-STDERR_TAIL:]
        log.error("keypoints %s worker %d exited with code %d:\n%s", stage, shard, code, output)
        last = next((line for line in reversed(tail) if line.strip()), "no output")
        raise ProcessorError(
            f"the keypoints {stage} worker {shard} exited with code {code} ({last[:300]}); "
            "see the agent's log for its output"
        )


async def _stop(children: Sequence[asyncio.subprocess.Process]) -> None:
    """SIGTERM every live child now, SIGKILL those still alive after the grace."""
    alive = [c for c in children if c.returncode is None]
    for child in alive:
        with contextlib.suppress(ProcessLookupError):
            child.terminate()
    for child in alive:
        try:
            await asyncio.wait_for(child.wait(), TERMINATE_GRACE)
        except TimeoutError:
            with contextlib.suppress(ProcessLookupError):
                child.kill()
            await child.wait()
        if child.returncode is not None and child.returncode < 0:
            log.info("keypoints worker %d stopped (signal %d)", child.pid, -child.returncode)
    for child in children:
        if child.stdin is not None:
            child.stdin.close()
