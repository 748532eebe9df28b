"""util.threads: a sync call awaited on a daemon thread, so a hung call never holds the exit."""

from __future__ import annotations

import asyncio
import contextvars
import subprocess
import sys
import textwrap
import threading

import pytest
from notraining_agent.util.threads import in_daemon_thread

REQUEST_ID: contextvars.ContextVar[str] = contextvars.ContextVar("request_id", default="-")


async def test_the_result_and_the_arguments_go_through() -> None:
    assert await in_daemon_thread(pow, 2, 10) == 1024
    assert await in_daemon_thread(int, "ff", base=16) == 255


async def test_the_calls_exception_reaches_the_caller() -> None:
    with pytest.raises(ValueError, match="invalid literal"):
        await in_daemon_thread(int, "not a number")


async def test_the_callers_context_is_carried_into_the_thread() -> None:
    """The job's log context (a ContextVar) must label what the thread logs."""
    REQUEST_ID.set("ntd-1")
    assert await in_daemon_thread(REQUEST_ID.get) == "ntd-1"


async def test_the_call_runs_on_a_daemon_thread() -> None:
    entered, release = threading.Event(), threading.Event()
    seen: list[threading.Thread] = []

    def hang() -> None:
        seen.append(threading.current_thread())
        entered.set()
        release.wait()

    call = asyncio.ensure_future(in_daemon_thread(hang))
    await asyncio.to_thread(entered.wait)
    assert seen[0].daemon
    assert seen[0] is not threading.main_thread()
    release.set()
    await call


def test_a_hung_call_does_not_hold_the_process_exit() -> None:
    """The process ends once its coroutine gives up, the call still hanging; to_thread would
    keep asyncio.run joining its executor for ever (the guard below would then fail)."""
    program = textwrap.dedent(
        """
        import asyncio, threading
        from notraining_agent.util.threads import in_daemon_thread

        async def main():
            never = threading.Event()
            try:
                await asyncio.wait_for(in_daemon_thread(never.wait), 0.05)
            except TimeoutError:
                print("gave up")

        asyncio.run(main())
        """
    )
    done = subprocess.run(
        [sys.executable, "-c", program], capture_output=True, text=True, timeout=120, check=False
    )
    assert (done.returncode, done.stdout.strip()) == (0, "gave up")
