"""Sync calls that may hang, awaited without holding the process's exit."""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import threading
from collections.abc import Callable
from typing import Any


async def in_daemon_thread(func: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Any:
    """``asyncio.to_thread`` on a daemon thread of its own, for calls that may hang.

    A SIGTERM usually comes while a stop or wait call is in flight (GCE stopping the
    VM is what sends it). ``asyncio.run`` joins the default executor's threads
    before the process may exit, so a call in ``to_thread`` held the exit until its
    timeout: seconds of VM time, or systemd's SIGKILL. A daemon thread is not waited for.
    """
    loop = asyncio.get_running_loop()
    future: asyncio.Future[Any] = loop.create_future()
    context = contextvars.copy_context()

    def settle(result: Any, error: BaseException | None) -> None:
        if future.done():  # cancelled or timed out meanwhile
            return
        if error is not None:
            future.set_exception(error)
        else:
            future.set_result(result)

    def work() -> None:
        result, error = None, None
        try:
            result = context.run(func, *args, **kwargs)
        except BaseException as exc:  # handed to the awaiting coroutine, not lost
            error = exc
        # The loop may have closed while the call hung: then nobody is waiting.
        with contextlib.suppress(RuntimeError):
            loop.call_soon_threadsafe(settle, result, error)

    name = getattr(func, "__qualname__", "call")
    threading.Thread(target=work, name=f"daemon-{name}", daemon=True).start()
    return await future
