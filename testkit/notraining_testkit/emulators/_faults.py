"""Failures an emulator can be told to inject (a status or a hang), and Google's error shape."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Generic, TypeVar

from aiohttp import web

OpT = TypeVar("OpT", bound=str)


@dataclass
class Fault:
    """What the next matching calls get."""

    status: int | None  # None = hang until the server closes
    remaining: int | None  # None = every call


class Faults(Generic[OpT]):
    """Base of emulators whose calls can be failed or hung, by operation or all at once.

    Subclasses register :meth:`_on_shutdown` on their app, so hung calls end when it closes.
    """

    def __init__(self) -> None:
        self._faults: dict[OpT | None, Fault] = {}
        self._closing = asyncio.Event()

    def fail(self, status: int, *, operation: OpT | None = None, times: int | None = 1) -> None:
        """Answer ``status`` to the next ``times`` calls (None: all) of ``operation`` (or any)."""
        self._faults[operation] = Fault(status, times)

    def hang(self, *, operation: OpT | None = None, times: int | None = None) -> None:
        """Never answer the next ``times`` calls (None: all) until the server closes."""
        self._faults[operation] = Fault(None, times)

    def clear_faults(self) -> None:
        """Answer every call normally again."""
        self._faults.clear()

    def _take_fault(self, op: OpT) -> Fault | None:
        """The fault for this call, if any (an operation's own before the catch-all)."""
        for key in (op, None):
            fault = self._faults.get(key)
            if fault is None:
                continue
            if fault.remaining is not None:
                fault.remaining -= 1
                if fault.remaining <= 0:
                    del self._faults[key]
            return fault
        return None

    async def _injected(self, op: OpT, request: web.Request) -> web.Response | None:
        """The injected answer to this call, or None when no fault applies to it."""
        fault = self._take_fault(op)
        if fault is None:
            return None
        if request.can_read_body:
            await request.read()  # the client is still sending; take it first
        if fault.status is None:
            await self._closing.wait()
            return google_error(503, "The emulator is shutting down.", "backendError")
        return google_error(fault.status, f"Injected failure for {op}.", "injected")

    async def _on_shutdown(self, _app: web.Application) -> None:
        """Release hung calls so the server closes without waiting out its timeout."""
        self._closing.set()


def google_error(status: int, message: str, reason: str) -> web.Response:
    """An error answer in the JSON shape Google's APIs use, which their clients parse."""
    return web.json_response(
        {
            "error": {
                "code": status,
                "message": message,
                "errors": [{"message": message, "domain": "global", "reason": reason}],
            }
        },
        status=status,
    )
