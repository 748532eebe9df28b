"""Import aiohttp without parsing the system's CA bundle twice on the start-up path (issue 12).

``aiohttp.connector`` builds two TLS contexts when it is imported, and both load the
system's CA bundle (about 150 certificates: 25-50 ms of CPU each on the project's
2-core VMs, a quarter of aiohttp's import), although one of them never verifies
anything (aiohttp's ``ssl=False`` context, ``CERT_NONE``). The daemon imports aiohttp
through :func:`import_aiohttp` instead: CA loading is switched off while aiohttp is
imported, then every verifying context aiohttp made gets the CAs in a thread, where
OpenSSL parses them without holding the GIL, so it overlaps the agent's own imports.
:func:`cas_loaded` waits for that thread; the daemon calls it before its first request
that could be HTTPS. Until then a verifying context holds no CA and refuses every
server: the failure is closed, never open.
"""

from __future__ import annotations

import asyncio
import ssl
import sys
import threading
from collections.abc import Callable

_loading: threading.Thread | None = None


def import_aiohttp() -> None:
    """Import aiohttp, its verifying TLS contexts getting their CAs in a background thread."""
    global _loading  # noqa: PLW0603 - one load per process, awaited by cas_loaded()
    if "aiohttp" in sys.modules:
        return  # imported the usual way already: its contexts hold their CAs
    real: Callable[[ssl.SSLContext], None] = ssl.SSLContext.set_default_verify_paths
    ssl.SSLContext.set_default_verify_paths = _skip  # type: ignore[method-assign,assignment]
    try:
        import aiohttp.connector  # noqa: PLC0415 - the point of this function
    finally:
        ssl.SSLContext.set_default_verify_paths = real  # type: ignore[method-assign,assignment]
    verifying = [
        value
        for value in vars(aiohttp.connector).values()
        if isinstance(value, ssl.SSLContext) and value.verify_mode != ssl.CERT_NONE
    ]
    _loading = threading.Thread(target=_load, args=(verifying,), name="ca-load", daemon=True)
    _loading.start()


async def cas_loaded() -> None:
    """Return once aiohttp's verifying contexts hold the system's CAs."""
    if _loading is not None and _loading.is_alive():
        await asyncio.to_thread(_loading.join)


def _skip(_context: ssl.SSLContext) -> None:
    """set_default_verify_paths while aiohttp is imported: the CAs come later."""


def _load(contexts: list[ssl.SSLContext]) -> None:
    for context in contexts:
        context.set_default_verify_paths()
