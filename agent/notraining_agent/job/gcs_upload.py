"""Upload a job's output folder to ``gs://bucket/prefix`` with google-cloud-storage.

The library is synchronous, so each file goes up in a worker thread while the event
loop keeps serving; retries and their waits happen here on the loop, so a cancelled
job stops between files and tests do not sleep. Credentials come from google-auth's
default chain (on a VM: the service account through the metadata server); when
``STORAGE_EMULATOR_HOST`` is set the library talks to that emulator anonymously.
Library retries are off: this module's policy is the only one, and it says so in logs.

The Google libraries are imported at the top on purpose: this module *is* the ``gcs``
extra's boundary, imported lazily by :mod:`notraining_agent.job.output`, so a VM without the
extra fails that import and the operator gets a ConfigError naming the extra.
"""

from __future__ import annotations

import asyncio
import logging
import mimetypes
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import google.auth
from google.api_core import exceptions as api
from google.auth import exceptions as auth
from google.auth.credentials import AnonymousCredentials
from google.cloud import storage
from requests import exceptions as http

from notraining_agent.errors import ConfigError, JobError
from notraining_agent.util.retry import Backoff, Clock

log = logging.getLogger(__name__)

EMULATOR_ENV = "STORAGE_EMULATOR_HOST"
SCOPES = ("https://www.googleapis.com/auth/devstorage.read_write",)
DEFAULT_ATTEMPTS = 5
"""Tries per file before the upload (and so the job's publication) fails."""
DEFAULT_BACKOFF = Backoff(initial=1.0, factor=2.0, cap=30.0, jitter=True)
DEFAULT_TIMEOUT = (10.0, 120.0)
"""Connect and read timeouts of each HTTP request, in seconds."""
RETRYABLE_STATUS = frozenset({408, 429, 500, 502, 503, 504})


@dataclass(frozen=True)
class UploadPolicy:
    """How hard to try: attempts per file, waits between them, and the clock that waits."""

    attempts: int = DEFAULT_ATTEMPTS
    backoff: Backoff = DEFAULT_BACKOFF
    clock: Clock = field(default_factory=Clock)
    timeout: tuple[float, float] = DEFAULT_TIMEOUT


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


async def upload_tree(
    local_dir: Path,
    gs_uri: str,
    *,
    credentials: Any = None,
    project: str | None = None,
    policy: UploadPolicy | None = None,
    environ: Mapping[str, str] | None = None,
) -> None:
    """Upload every file under ``local_dir`` to ``gs_uri/<relative path>``.

    JobError names the file and the cause when one cannot be uploaded after the
    policy's attempts; an earlier file may then already be in the bucket (a re-run of
    the job overwrites it).
    """
    policy = policy or UploadPolicy()
    environ = os.environ if environ is None else environ
    bucket_name, prefix = parse_gs_uri(gs_uri)
    files = await asyncio.to_thread(files_of, local_dir)
    bucket = await asyncio.to_thread(_bucket, bucket_name, credentials, project, environ)
    for path, relative in files:
        name = f"{prefix}/{relative}" if prefix else relative
        await _upload_one(bucket, path, name, gs_uri, policy)
    log.info(
        "uploaded %d files to %s",
        len(files),
        gs_uri,
        extra={"event": "uploaded", "files": len(files), "output_uri": gs_uri},
    )


def _bucket(name: str, credentials: Any, project: str | None, environ: Mapping[str, str]) -> Any:
    """A bucket handle (no request yet); credentials resolved now, in this thread."""
    if credentials is None:
        if environ.get(EMULATOR_ENV):
            credentials = AnonymousCredentials()  # type: ignore[no-untyped-call]
            project = project or "emulator"
        else:
            try:
                credentials, found_project = google.auth.default(scopes=list(SCOPES))
            except auth.DefaultCredentialsError as exc:
                raise JobError(
                    f"no Google credentials to upload to gs://{name} ({exc}); run on a VM "
                    "with a service account or set GOOGLE_APPLICATION_CREDENTIALS"
                ) from exc
            project = project or found_project
    client = storage.Client(project=project, credentials=credentials)
    return client.bucket(name)


async def _upload_one(
    bucket: Any, path: Path, name: str, gs_uri: str, policy: UploadPolicy
) -> None:
    """One file, retried on transient errors; JobError when it cannot be done."""
    content_type = mimetypes.guess_type(path.name)[0] or "application/octet-stream"
    delays = policy.backoff.delays()
    for attempt in range(1, policy.attempts + 1):
        try:
            await asyncio.to_thread(_put, bucket, path, name, content_type, policy.timeout)
        except Exception as exc:  # classified below; the library raises many types
            transient = _is_transient(exc)
            if not transient or attempt == policy.attempts:
                advice = (
                    "Cloud Storage kept failing; try the job again later"
                    if transient
                    else "check the bucket exists and the VM's service account may write to it"
                )
                raise JobError(
                    f"upload of {path.name} to gs://{bucket.name}/{name} failed after "
                    f"{attempt} attempt(s) ({_describe(exc)}); {advice}"
                ) from exc
            delay = next(delays)
            log.warning(
                "upload of %s failed (%s); attempt %d of %d, next in %.1f s",
                name,
                _describe(exc),
                attempt,
                policy.attempts,
                delay,
                extra={"output_uri": gs_uri},
            )
            await policy.clock.sleep(delay)
        else:
            return


def _put(
    bucket: Any, path: Path, name: str, content_type: str, timeout: tuple[float, float]
) -> None:
    blob = bucket.blob(name)
    blob.upload_from_filename(str(path), content_type=content_type, timeout=timeout, retry=None)


def _is_transient(exc: BaseException) -> bool:
    """408/429/5xx answers, timeouts and broken connections are worth another try."""
    if isinstance(exc, api.GoogleAPICallError):
        return exc.code in RETRYABLE_STATUS
    if isinstance(exc, auth.TransportError | http.ConnectionError | http.Timeout):
        return True
    return isinstance(exc, ConnectionError | TimeoutError)


def _describe(exc: BaseException) -> str:
    """A short cause: the HTTP status and Google's message, not the whole response body."""
    code = getattr(exc, "code", None)
    message = getattr(exc, "message", None) or str(exc)
    text = f"{type(exc).__name__}: {message}"
    if isinstance(code, int):
        text = f"HTTP {code}, {text}"
    return text[:300]
