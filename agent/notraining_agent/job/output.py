"""Publish a job's output folder under ``output_uri`` (contract sections 4 and 5).

The final place is ``output_uri/<country>/<channel>/<category>/<label>/<ntd_transaction_id>``
with every part passed through :func:`~notraining_agent.job.paths.safe_part`, except the
id, which goes through :func:`~notraining_agent.job.paths.id_folder`: sanitising is lossy,
and two different jobs must never share (and overwrite) one place, on any VM. ``file://``
copies the tree into a temporary folder beside the target, then renames it into
place, replacing what an earlier attempt of the same job left there. ``gs://``
uploads through :func:`notraining_agent.job.gcs_upload.upload_tree`, with the token
and emulator host downloads use.
"""

from __future__ import annotations

import asyncio
import logging
import shutil
import uuid
from collections.abc import Sequence
from pathlib import Path
from urllib.parse import unquote, urlsplit

from notraining_agent.errors import ConfigError, JobError
from notraining_agent.job.gcs_download import TokenGetter
from notraining_agent.job.gcs_upload import upload_tree
from notraining_agent.job.paths import id_folder, safe_part

log = logging.getLogger(__name__)


def output_location(output_uri: str, parts: Sequence[str]) -> str:
    """The final URI for these path parts, each sanitised; the last is the job's id."""
    *folders, ntd_transaction_id = parts
    return "/".join(
        [
            output_uri.rstrip("/"),
            *(safe_part(part) for part in folders),
            id_folder(ntd_transaction_id),
        ]
    )


async def publish(
    local_dir: Path,
    output_uri: str,
    parts: Sequence[str],
    *,
    token: TokenGetter | None = None,
    storage_emulator_host: str | None = None,
) -> str:
    """Copy or upload ``local_dir`` to its final place and return that URI.

    ``token`` and ``storage_emulator_host`` are for ``gs://``, as for downloads.
    """
    final = output_location(output_uri, parts)
    if final.startswith("file://"):
        target = _file_path(final)
        try:
            await asyncio.to_thread(_replace_tree, local_dir, target)
        except OSError as exc:
            raise JobError(
                f"output could not be written to {final} ({exc}); check output_uri and disk space"
            ) from exc
    elif final.startswith("gs://"):
        await upload_tree(
            local_dir, final, token=token, storage_emulator_host=storage_emulator_host
        )
    else:
        raise ConfigError(f"config: output_uri={output_uri} must start with file:// or gs://")
    log.info("output published to %s", final, extra={"event": "published", "output_uri": final})
    return final


def _file_path(uri: str) -> Path:
    parts = urlsplit(uri)
    if parts.netloc not in ("", "localhost"):
        raise ConfigError(f"config: output_uri {uri} must be file:///absolute/path")
    path = Path(unquote(parts.path))
    if not path.is_absolute():
        raise ConfigError(f"config: output_uri {uri} must be file:///absolute/path")
    return path


def _replace_tree(source: Path, target: Path) -> None:
    """Copy beside the target, then swap it in with renames (never a half-written tree)."""
    target.parent.mkdir(parents=True, exist_ok=True)
    token = uuid.uuid4().hex[:12]
    staging = target.with_name(f".{target.name}.tmp-{token}")
    old = target.with_name(f".{target.name}.old-{token}")
    try:
        shutil.copytree(source, staging, symlinks=True)
        if target.exists():
            target.rename(old)
        try:
            staging.rename(target)
        except OSError:
            if old.exists():
                old.rename(target)  # put the earlier attempt's output back
            raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)
        shutil.rmtree(old, ignore_errors=True)
