"""Upload a job's output folder to ``gs://bucket/prefix`` over the Cloud Storage JSON API.

The same way downloads go (:mod:`notraining_agent.job.gcs_download`): plain aiohttp
and the VM's bearer token from the agent's one token source (``gce.credentials``),
or no token towards an emulator (``STORAGE_EMULATOR_HOST``) when there is none. Each
file is one ``uploadType=media`` POST streamed from disk, and the object Cloud Storage
returns must carry the file's CRC32C, or the upload is tried again. google-cloud-storage
was the other way: it costs about 36 MiB and half a second to import, and a thread
per call, for what is here one request per file.

Retries follow :mod:`notraining_agent.util.retry`, ``attempts`` per file.
"""

from __future__ import annotations

import asyncio
import base64
import json
import logging
import mimetypes
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import quote, urlsplit

import aiohttp
import google_crc32c
from yarl import URL

from notraining_agent.errors import ConfigError, JobError
from notraining_agent.job.gcs_download import TokenGetter, auth_headers, gcs_base
from notraining_agent.util.retry import (
    Attempt,
    Backoff,
    Clock,
    RetriesExhausted,
    Transient,
    retry,
    retryable_error,
    transient_answer,
)

log = logging.getLogger(__name__)

DEFAULT_ATTEMPTS = 5
"""Tries per file before the upload (and so the job's publication) fails."""
DEFAULT_BACKOFF = Backoff(initial=1.0, factor=2.0, cap=30.0, jitter=True)
DEFAULT_TIMEOUT = (10.0, 120.0)
"""Connect and read timeouts of each HTTP request, in seconds."""
CHUNK_BYTES = 1024 * 1024


@dataclass(frozen=True)
class UploadPolicy:
    """How hard to try: attempts per file, waits between them, and the clock that waits."""

    attempts: int = DEFAULT_ATTEMPTS
    backoff: Backoff = DEFAULT_BACKOFF
    clock: Clock = field(default_factory=Clock)
    timeout: tuple[float, float] = DEFAULT_TIMEOUT


class _Refused(Exception):  # noqa: N818 - a final answer, turned into JobError with advice
    """Cloud Storage answered with a status no retry fixes."""


def parse_gs_uri(gs_uri: str) -> tuple[str, str]:
    """``gs://bucket/some/prefix`` -> ``("bucket", "some/prefix")``; ConfigError if malformed."""
    parts = urlsplit(gs_uri)
    if parts.scheme != "gs" or not parts.netloc or parts.query or parts.fragment:
        raise ConfigError(f"config: output_uri {gs_uri} must look like gs://bucket/prefix")
    return parts.netloc, parts.path.strip("/")


def files_of(local_dir: Path) -> list[tuple[Path, str]]:
    """Every regular file under ``local_dir`` with its POSIX path relative to it, sorted.

    Symlinks are skipped: output is written by processors, which may be plug-ins, and a
    link must not carry a file from elsewhere on the VM into the bucket.
    """
    found: list[tuple[Path, str]] = []
    for path in sorted(local_dir.rglob("*")):
        if path.is_symlink():
            log.warning("not uploading %s: it is a symlink", path)
            continue
        if path.is_file():
            found.append((path, path.relative_to(local_dir).as_posix()))
    return found


def upload_url(base: str, bucket: str) -> URL:
    """The JSON API media-upload endpoint of ``bucket`` (the object name goes in the query)."""
    return URL(f"{base}/upload/storage/v1/b/{quote(bucket, safe='')}/o", encoded=True)


async def upload_tree(
    local_dir: Path,
    gs_uri: str,
    *,
    token: TokenGetter | None,
    storage_emulator_host: str | None = None,
    policy: UploadPolicy | None = None,
) -> None:
    """Upload every file under ``local_dir`` to ``gs_uri/<relative path>``.

    JobError names the file and the cause when one cannot be uploaded after the
    policy's attempts; an earlier file may then already be in the bucket (a re-run of
    the job overwrites it).
    """
    policy = policy or UploadPolicy()
    bucket, prefix = parse_gs_uri(gs_uri)
    if token is None and not storage_emulator_host:
        raise JobError(
            f"cannot upload to {gs_uri}: no service-account token (not on GCE?); run on a VM "
            "with a service account, or set STORAGE_EMULATOR_HOST for a local emulator"
        )
    files = await asyncio.to_thread(files_of, local_dir)
    connect, read = policy.timeout
    timeout = aiohttp.ClientTimeout(total=None, sock_connect=connect, sock_read=read)
    url = upload_url(gcs_base(storage_emulator_host), bucket)
    # Proxy variables are honoured as for any Google API call; no cookies are kept.
    async with aiohttp.ClientSession(
        timeout=timeout, trust_env=True, cookie_jar=aiohttp.DummyCookieJar()
    ) as session:
        for path, relative in files:
            name = f"{prefix}/{relative}" if prefix else relative
            await _upload_one(
                session,
                url,
                path=path,
                target=f"gs://{bucket}/{name}",
                name=name,
                token=token,
                policy=policy,
            )
    log.info(
        "uploaded %d files to %s",
        len(files),
        gs_uri,
        extra={"event": "uploaded", "files": len(files), "output_uri": gs_uri},
    )


async def _upload_one(
    session: aiohttp.ClientSession,
    url: URL,
    *,
    path: Path,
    target: str,
    name: str,
    token: TokenGetter | None,
    policy: UploadPolicy,
) -> None:
    """One file, retried on what the policy calls transient; JobError when it cannot be done."""
    content_type = mimetypes.guess_type(path.name)[0] or "application/octet-stream"
    try:
        expected = await asyncio.to_thread(_crc32c_of, path)
    except OSError as exc:
        raise JobError(f"cannot read {path} to upload it ({exc.strerror})") from exc

    media = url.with_query(uploadType="media", name=name)
    tries = 0

    async def attempt(this: Attempt) -> None:
        nonlocal tries
        tries = this.number
        headers = {"Content-Type": content_type, **await auth_headers(token, target)}
        await _post(
            session, media, path=path, headers=headers, expected=expected, clock=policy.clock
        )

    try:
        await retry(
            attempt,
            what=f"upload of {name}",
            clock=policy.clock,
            backoff=policy.backoff,
            attempts=policy.attempts,
            logger=log,
            extra={"output_uri": target},
        )
    except _Refused as exc:
        raise JobError(
            f"upload of {path.name} to {target} failed after {tries} attempt(s) ({exc}); check the "
            "bucket exists and the VM's service account may write to it"
        ) from exc
    except RetriesExhausted as exc:
        raise JobError(
            f"upload of {path.name} to {target} failed after {exc.attempts} attempt(s) "
            f"({exc.reason}); Cloud Storage kept failing; try the job again later"
        ) from exc


async def _post(
    session: aiohttp.ClientSession,
    url: URL,
    *,
    path: Path,
    headers: dict[str, str],
    expected: str,
    clock: Clock,
) -> None:
    """One media upload; returns when the stored object's CRC32C is the file's."""
    try:
        file = await asyncio.to_thread(path.open, "rb")
    except OSError as exc:
        raise JobError(f"cannot read {path} to upload it ({exc.strerror})") from exc
    try:
        # aiohttp reads a file body in the default executor, never on the loop.
        async with session.post(url, data=file, headers=headers, allow_redirects=False) as answer:
            status = answer.status
            text = await answer.text(errors="replace")
            transient = transient_answer(status, answer.headers, now=clock.wall())
    except (aiohttp.ClientError, TimeoutError) as exc:
        reason = retryable_error(exc)
        if reason is None:
            raise JobError(f"upload to {url.host} failed: {type(exc).__name__}: {exc}") from exc
        raise Transient(reason) from exc
    finally:
        await asyncio.to_thread(file.close)
    if status != 200:
        problem = f"HTTP {status}, {_google_message(text)}"
        if transient is None:
            raise _Refused(problem)
        raise Transient(problem, retry_after=transient.retry_after)
    stored = _json(text).get("crc32c")
    if stored != expected:
        raise Transient(f"the stored object's CRC32C ({stored}) is not the file's ({expected})")


def _crc32c_of(path: Path) -> str:
    """The file's CRC32C as the JSON API writes it: base64 of the big-endian 32 bits."""
    crc = 0
    with path.open("rb") as file:
        while chunk := file.read(CHUNK_BYTES):
            crc = google_crc32c.extend(crc, chunk)
    return base64.b64encode(int(crc).to_bytes(4, "big")).decode("ascii")


def _json(text: str) -> dict[str, object]:
    try:
        body = json.loads(text)
    except ValueError:
        return {}
    return body if isinstance(body, dict) else {}


def _google_message(text: str) -> str:
    """Google's error message from its JSON error shape, else the start of the body."""
    error = _json(text).get("error")
    message = error.get("message") if isinstance(error, dict) else None
    return str(message) if message else text.strip()[:200]
