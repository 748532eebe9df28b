"""Serve an emulator's aiohttp app on loopback, on a port the OS picks."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass

from aiohttp import web

LOOPBACK = "127.0.0.1"


@dataclass
class RunningServer:
    """An app being served; ``close()`` stops it and waits for its connections."""

    runner: web.AppRunner
    host: str
    port: int

    @property
    def url(self) -> str:
        """The base URL, without a trailing slash."""
        return f"http://{self.host}:{self.port}"

    @property
    def netloc(self) -> str:
        """``host:port``, the form ``GCE_METADATA_HOST`` and ``allowed_url_hosts`` take."""
        return f"{self.host}:{self.port}"

    async def close(self) -> None:
        """Stop listening and close open connections (hanging watches included)."""
        await self.runner.cleanup()


async def serve(app: web.Application, host: str = LOOPBACK, port: int = 0) -> RunningServer:
    """Start ``app`` on ``host:port`` (0 = any free port) and return where it listens."""
    runner = web.AppRunner(app, handle_signals=False, access_log=None, shutdown_timeout=1.0)
    await runner.setup()
    site = web.TCPSite(runner, host, port)
    await site.start()
    # aiohttp exposes the bound port only on the site's private server object.
    sockets = getattr(site._server, "sockets", None) or []
    bound_port = sockets[0].getsockname()[1] if sockets else port
    return RunningServer(runner=runner, host=host, port=int(bound_port))


@contextlib.asynccontextmanager
async def served(
    app: web.Application, host: str = LOOPBACK, port: int = 0
) -> AsyncIterator[RunningServer]:
    """:func:`serve` for an ``async with`` block: the server closes when the block ends."""
    running = await serve(app, host, port)
    try:
        yield running
    finally:
        await running.close()
