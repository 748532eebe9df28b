"""Download a job's URLs with the SSRF guard and one byte budget (contract section 5).

http(s) downloads use their own session whose connector resolves through
:class:`~notraining_agent.job.urlguard.GuardedResolver`, ignore proxy variables, and follow
redirects by hand so every hop is checked again (statically, then at connect);
at most :data:`MAX_REDIRECTS`. ``gs://bucket/object`` goes to the Cloud Storage
JSON API (or ``STORAGE_EMULATOR_HOST``), which is Google's, not the job's, so it
skips the private-address refusal. Every byte counts against one budget shared by
all downloads of the job, checked while streaming (Content-Length is only used to
refuse early). Files land in ``dest_dir`` under a temporary name, then are renamed.

Speed (issue 12): up to :data:`IN_FLIGHT` downloads at once, all of them to one
host if the job's files live there (a package's arts usually do), since per-request
latency, not bandwidth, bounds a job of many small files; the body is taken as the
socket delivers it and written in :data:`FLUSH_BYTES` blocks off the loop, hashed in
the same pass, so no file is read back. URLs whose digest nobody needs (the zip) are not hashed.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import aiohttp
from yarl import URL

from notraining_agent.errors import InputRefusedError, JobError
from notraining_agent.job.gcs_download import TokenGetter, gcs_base, gcs_request
from notraining_agent.job.partfile import PartFile
from notraining_agent.job.paths import url_basename
from notraining_agent.job.urlguard import FETCH_SCHEMES, GuardedResolver, static_refusal
from notraining_agent.util.urls import error_text, scrub_urls, shown_url

log = logging.getLogger(__name__)

MAX_REDIRECTS = 5
REDIRECTS = frozenset({301, 302, 303, 307, 308})
FLUSH_BYTES = 256 * 1024  # per download in flight: bounds memory, amortises the thread hop
IN_FLIGHT = 32
PER_HOST = 32
"""Was 16: at 50 ms per request the bench's 51 files took 4 rounds, now 2 (issue 12). The
memory bound is IN_FLIGHT's, unchanged."""
USER_AGENT = "notraining-agent"

FilesProgress = Callable[[int, int], None]


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


@dataclass
class _Job:
    budget: ByteBudget
    allowed_hosts: frozenset[str]
    metadata_hosts: frozenset[str]
    token: TokenGetter | None
    gcs_base: str
    progress_interval: float
    unhashed: frozenset[int] = frozenset()


async def download_all(
    urls: Sequence[str],
    dest_dir: Path,
    *,
    allowed_hosts: frozenset[str],
    metadata_hosts: frozenset[str],
    max_total_bytes: int,
    token: TokenGetter | None = None,
    storage_emulator_host: str | None = None,
    concurrency: int = IN_FLIGHT,
    per_host: int = PER_HOST,
    unhashed: frozenset[int] = frozenset(),
    connect_timeout: float = 10.0,
    read_timeout: float = 60.0,
    on_progress: FilesProgress | None = None,
    progress_interval: float = 1.0,
) -> list[Downloaded]:
    """Download every URL into ``dest_dir`` (same order as ``urls``); the first failure wins.

    ``on_progress(files_done, files_total)`` is called after each file. A failure
    cancels the other downloads and raises InputRefusedError naming the URL. The
    downloads whose index is in ``unhashed`` get no sha256 (saves a pass over them).
    """
    await asyncio.to_thread(dest_dir.mkdir, parents=True, exist_ok=True)
    targets = _unique_targets(urls, dest_dir)
    job = _Job(
        budget=ByteBudget(max_total_bytes),
        allowed_hosts=allowed_hosts,
        metadata_hosts=metadata_hosts,
        token=token,
        gcs_base=gcs_base(storage_emulator_host),
        progress_interval=progress_interval,
        unhashed=unhashed,
    )
    timeout = aiohttp.ClientTimeout(
        total=None, connect=connect_timeout, sock_connect=connect_timeout, sock_read=read_timeout
    )
    resolver = GuardedResolver(
        allowed_hosts=allowed_hosts, metadata_hosts=metadata_hosts, timeout=connect_timeout
    )
    guarded = aiohttp.TCPConnector(
        resolver=resolver, use_dns_cache=False, limit=concurrency, limit_per_host=per_host
    )
    limit = asyncio.Semaphore(concurrency)
    done = 0
    async with (
        _session(guarded, timeout) as web,
        _session(aiohttp.TCPConnector(limit=concurrency), timeout) as google,
    ):

        async def one(index: int, url: str, target: Path) -> Downloaded:
            nonlocal done
            hashed = index not in job.unhashed
            async with limit:
                if url[:3].lower() == "gs:":
                    result = await _fetch_gs(google, url, target, job, hashed=hashed)
                else:
                    result = await _fetch_http(web, url, target, job, hashed=hashed)
            done += 1
            if on_progress is not None:
                on_progress(done, len(urls))
            return result

        try:
            async with asyncio.TaskGroup() as group:
                tasks = [
                    group.create_task(one(i, u, t))
                    for i, (u, t) in enumerate(zip(urls, targets, strict=True))
                ]
        except ExceptionGroup as group_error:
            first = group_error.exceptions[0]  # the others were cancelled because of it
            raise first from first.__cause__
    return [task.result() for task in tasks]


def _session(
    connector: aiohttp.BaseConnector, timeout: aiohttp.ClientTimeout
) -> aiohttp.ClientSession:
    return aiohttp.ClientSession(
        connector=connector,
        timeout=timeout,
        trust_env=False,
        cookie_jar=aiohttp.DummyCookieJar(),
        headers={"User-Agent": USER_AGENT},
    )


def _unique_targets(urls: Sequence[str], dest_dir: Path) -> list[Path]:
    """One file per URL, named after its basename; ``-2``, ``-3``... when names repeat."""
    taken: set[str] = set()
    targets: list[Path] = []
    for url in urls:
        name = url_basename(url)
        stem, dot, suffix = name.rpartition(".")
        if not dot or not stem:
            stem, suffix = name, ""
        candidate, counter = name, 1
        while candidate.casefold() in taken:
            counter += 1
            candidate = f"{stem}-{counter}.{suffix}" if suffix else f"{stem}-{counter}"
        taken.add(candidate.casefold())
        targets.append(dest_dir / candidate)
    return targets


async def _fetch_http(
    session: aiohttp.ClientSession, url: str, target: Path, job: _Job, *, hashed: bool = True
) -> Downloaded:
    shown = shown_url(url)
    current = url
    for hop in range(MAX_REDIRECTS + 1):
        refused = static_refusal(
            current, allowed_hosts=job.allowed_hosts, metadata_hosts=job.metadata_hosts
        )
        if refused is None and URL(current).scheme not in FETCH_SCHEMES:
            refused = "redirects may lead only to http or https URLs"
        if refused:
            where = shown if hop == 0 else f"{shown} (redirected to {shown_url(current)})"
            raise InputRefusedError(f"download of {where} refused: {refused}")
        async with _guarded_get(session, current, shown) as response:
            if response.status in REDIRECTS:
                location = response.headers.get("Location")
                if not location:
                    raise InputRefusedError(
                        f"download of {shown} failed: a redirect without Location"
                    )
                try:
                    current = str(response.url.join(URL(location)))
                except ValueError:
                    raise InputRefusedError(
                        f"download of {shown} refused: it redirects to an invalid URL"
                    ) from None
                continue
            return await _save(response, url, target, job, hashed=hashed)
    raise InputRefusedError(
        f"download of {shown} refused: more than {MAX_REDIRECTS} redirects; link the file directly"
    )


async def _fetch_gs(
    session: aiohttp.ClientSession, url: str, target: Path, job: _Job, *, hashed: bool = True
) -> Downloaded:
    refused = static_refusal(
        url, allowed_hosts=job.allowed_hosts, metadata_hosts=job.metadata_hosts
    )
    if refused:
        raise InputRefusedError(f"download of {shown_url(url)} refused: {refused}")
    api, headers = await gcs_request(url, base=job.gcs_base, token=job.token)
    async with _guarded_get(session, api, shown_url(url), headers) as response:
        return await _save(response, url, target, job, hashed=hashed)


class _guarded_get:  # noqa: N801 - used like a function: `async with _guarded_get(...)`
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


async def _save(
    response: aiohttp.ClientResponse, url: str, target: Path, job: _Job, *, hashed: bool = True
) -> Downloaded:
    """Stream the body into ``target`` through a temporary file, counting every byte.

    Chunks are taken as they arrive (``iter_any``), neither re-cut nor joined, and
    handed to a thread in blocks of FLUSH_BYTES, which hashes and writes them in one
    pass; a body of one block costs one thread hop in all (see :mod:`.partfile`).
    """
    shown = shown_url(url)
    announced = response.content_length
    if announced is not None and announced > job.budget.remaining:
        raise InputRefusedError(
            f"download of {shown} refused: it announces {announced} bytes, more than the "
            f"{job.budget.remaining} left of max_download_bytes ({job.budget.limit})"
        )
    part = PartFile(target, hashed=hashed)
    size = pending_bytes = 0
    pending: list[bytes] = []
    last_log = time.monotonic()
    try:
        try:
            async for chunk in response.content.iter_any():
                job.budget.take(len(chunk), shown)
                size += len(chunk)
                pending.append(chunk)
                pending_bytes += len(chunk)
                if pending_bytes >= FLUSH_BYTES:
                    full, pending, pending_bytes = pending, [], 0
                    await asyncio.to_thread(part.write, full)
                if time.monotonic() - last_log >= job.progress_interval:
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
