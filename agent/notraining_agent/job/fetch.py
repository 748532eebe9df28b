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
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import aiohttp
from yarl import URL

from notraining_agent.errors import InputRefusedError
from notraining_agent.job.gcs_download import TokenGetter, gcs_base, gcs_request
from notraining_agent.job.paths import url_basename
from notraining_agent.job.transfer import (
    REDIRECTS,
    ByteBudget,
    Downloaded,
    guarded_get,
    save_body,
)
from notraining_agent.job.urlguard import FETCH_SCHEMES, GuardedResolver, static_refusal
from notraining_agent.util.urls import shown_url

log = logging.getLogger(__name__)

MAX_REDIRECTS = 5
IN_FLIGHT = 32
PER_HOST = 32
"""Was 16: at 50 ms per request the bench's 51 files took 4 rounds, now 2 (issue 12). The
memory bound is IN_FLIGHT's, unchanged."""
USER_AGENT = "notraining-agent"

FilesProgress = Callable[[int, int], None]


@dataclass
class _Job:
    budget: ByteBudget
    allowed_hosts: frozenset[str]
    metadata_hosts: frozenset[str]
    token: TokenGetter | None
    gcs_base: str
    progress_interval: float
    unhashed: frozenset[int] = frozenset()

    async def save(
        self, response: aiohttp.ClientResponse, url: str, target: Path, *, hashed: bool
    ) -> Downloaded:
        """Stream ``response`` into ``target`` against this job's budget."""
        return await save_body(
            response,
            url,
            target,
            self.budget,
            progress_interval=self.progress_interval,
            hashed=hashed,
        )


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
        async with guarded_get(session, current, shown) as response:
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
            return await job.save(response, url, target, hashed=hashed)
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
    async with guarded_get(session, api, shown_url(url), headers) as response:
        return await job.save(response, url, target, hashed=hashed)
