"""One GET's answer streamed into a file: its failures named, its bytes counted.

:mod:`.fetch` decides what to download and follows redirects; this module turns a
transport failure into an error that names the (scrubbed) URL and tells what to do,
and writes the body through a :class:`~.partfile.PartFile` (hashed in the same pass)
against the job's one :class:`ByteBudget`.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass
from pathlib import Path

import aiohttp
from yarl import URL

from notraining_agent.errors import InputRefusedError, JobError
from notraining_agent.job.partfile import PartFile
from notraining_agent.job.paths import url_basename
from notraining_agent.util.urls import error_text, scrub_urls, shown_url

log = logging.getLogger("notraining_agent.job.fetch")
"""Download lines keep the logger name log queries already use for them."""

REDIRECTS = frozenset({301, 302, 303, 307, 308})
FLUSH_BYTES = 256 * 1024  # per download in flight: bounds memory, amortises the thread hop


@dataclass(frozen=True)
class Downloaded:
    """One downloaded URL: ``name`` is the sanitised basename (the art's name).

    ``sha256`` is empty when the caller asked for no digest (``unhashed``).
    """

    url: str
    name: str
    path: Path
    size: int
    sha256: str


class ByteBudget:
    """All downloads of one job together may write at most ``limit`` bytes."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.used = 0

    @property
    def remaining(self) -> int:
        """Bytes still allowed."""
        return max(self.limit - self.used, 0)

    def take(self, count: int, url: str) -> None:
        """Count ``count`` more bytes of ``url``; InputRefusedError past the limit."""
        self.used += count
        if self.used > self.limit:
            raise InputRefusedError(
                f"download of {url} refused: the job's downloads passed max_download_bytes "
                f"({self.limit} bytes); raise max_download_bytes or send smaller files"
            )


class guarded_get:  # noqa: N801 - used like a function: `async with guarded_get(...)`
    """A GET that turns every transport failure into InputRefusedError naming ``shown``.

    ``shown`` is the URL already passed through :func:`shown_url` by the caller.
    """

    def __init__(
        self,
        session: aiohttp.ClientSession,
        url: str | URL,
        shown: str,
        headers: dict[str, str] | None = None,
    ) -> None:
        self._call = session.get(url, allow_redirects=False, headers=headers)
        self._shown = shown
        self._response: aiohttp.ClientResponse | None = None

    async def __aenter__(self) -> aiohttp.ClientResponse:
        try:
            self._response = await self._call
        except InputRefusedError as exc:
            raise InputRefusedError(
                f"download of {self._shown} refused: {scrub_urls(str(exc))}"
            ) from exc
        except aiohttp.ClientConnectorError as exc:
            if isinstance(exc.os_error, InputRefusedError):
                raise InputRefusedError(
                    f"download of {self._shown} refused: {scrub_urls(str(exc.os_error))}"
                ) from exc
            raise _failed(self._shown, exc) from exc
        except (aiohttp.ClientError, TimeoutError, OSError) as exc:
            raise _failed(self._shown, exc) from exc
        if self._response.status not in REDIRECTS and self._response.status != 200:
            status = self._response.status
            self._response.release()
            raise InputRefusedError(
                f"download of {self._shown} failed: the server answered HTTP {status}; "
                "check the URL and its access rights"
            )
        return self._response

    async def __aexit__(self, *exc_info: object) -> None:
        if self._response is not None:
            self._response.release()


def _failed(shown: str, exc: BaseException) -> InputRefusedError:
    reason = "timed out" if isinstance(exc, TimeoutError) else error_text(exc)
    return InputRefusedError(f"download of {shown} failed: {reason}; check the URL and retry")


async def save_body(
    response: aiohttp.ClientResponse,
    url: str,
    target: Path,
    budget: ByteBudget,
    *,
    progress_interval: float,
    hashed: bool = True,
) -> Downloaded:
    """Stream the body into ``target`` through a temporary file, counting every byte.

    Chunks are taken as they arrive (``iter_any``), neither re-cut nor joined, and
    handed to a thread in blocks of FLUSH_BYTES, which hashes and writes them in one
    pass; a body of one block costs one thread hop in all (see :mod:`.partfile`).
    """
    shown = shown_url(url)
    announced = response.content_length
    if announced is not None and announced > budget.remaining:
        raise InputRefusedError(
            f"download of {shown} refused: it announces {announced} bytes, more than the "
            f"{budget.remaining} left of max_download_bytes ({budget.limit})"
        )
    part = PartFile(target, hashed=hashed)
    size = pending_bytes = 0
    pending: list[bytes] = []
    last_log = time.monotonic()
    try:
        try:
            async for chunk in response.content.iter_any():
                budget.take(len(chunk), shown)
                size += len(chunk)
                pending.append(chunk)
                pending_bytes += len(chunk)
                if pending_bytes >= FLUSH_BYTES:
                    full, pending, pending_bytes = pending, [], 0
                    await asyncio.to_thread(part.write, full)
                if time.monotonic() - last_log >= progress_interval:
                    last_log = time.monotonic()
                    _log_progress(shown, size, announced)
            await asyncio.to_thread(part.finish, pending)
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise _failed(shown, exc) from exc
        except OSError as exc:
            raise JobError(
                f"download of {shown} could not be written ({exc.strerror}); check free disk space"
            ) from exc
    except BaseException:
        # Shielded: a second cancel while this waits must not drop the discard before
        # the thread runs it (the file would stay open and the .part behind).
        await asyncio.shield(asyncio.to_thread(part.discard))
        raise
    _log_progress(shown, size, announced)
    return Downloaded(url=url, name=url_basename(url), path=target, size=size, sha256=part.sha256)


def _log_progress(shown: str, size: int, total: int | None) -> None:
    log.info(
        "download %s: %d bytes",
        shown,
        size,
        extra={"event": "download", "url": shown, "bytes": size, "total": total},
    )
