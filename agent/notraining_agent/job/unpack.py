"""Write the checked entries of a job's zip, hashing each as it is written, on two threads.

:mod:`.archive` decides what may be extracted (its plan); this module only writes it,
still counting every inflated byte against ``max_total_bytes`` and each entry's ratio.
Issue 12: extraction ran after the downloads on one core, ~90 ms for the bench's 20 MB;
sha256, zlib's CRC and the file reads and writes all release the GIL, so a big plan is
split in two shares (by declared size, for balance only: nothing trusts those sizes)
written at once from two handles. The byte budget is shared under a lock, and the first
failure stops the other share at its next chunk.
"""

from __future__ import annotations

import hashlib
import lzma
import os
import threading
import zipfile
import zlib
from pathlib import Path
from typing import IO

from notraining_agent.errors import JobError
from notraining_agent.job.zipscan import refuse_nested, refused

RATIO_FLOOR_BYTES = 1024 * 1024  # small files may compress well without being bombs
# Measured (issue 12): 64 KiB reads cost least CPU; from 128 KiB on, each read's buffer
# is a fresh mmap that the kernel must fault in, and 1 MiB reads cost 1.7x as much.
CHUNK_BYTES = 64 * 1024
SPLIT_BYTES = 4 * 1024 * 1024
"""Below this many declared bytes a second thread costs more than it saves."""

READ_ERRORS = (
    zipfile.BadZipFile,
    zlib.error,
    lzma.LZMAError,
    EOFError,
    NotImplementedError,
    RuntimeError,
    ValueError,
)
Plan = list[tuple[zipfile.ZipInfo, tuple[str, ...]]]
Digests = dict[Path, tuple[str, int]]


class StoppedError(Exception):
    """The async caller was cancelled (or the other share failed): stop at the next chunk."""


class _Shared:
    """What both shares use: where and how to write, the inflated total, whether to stop."""

    def __init__(
        self,
        root: Path,
        name: str,
        *,
        limit: int,
        max_ratio: int,
        stop: threading.Event | None,
        digests: Digests | None,
    ) -> None:
        self.root, self.name, self.max_ratio, self.digests = root, name, max_ratio, digests
        self.limit = limit
        self.total = 0
        self.lock = threading.Lock()
        self.stop = stop
        self.failed = threading.Event()

    def stopped(self) -> bool:
        return self.failed.is_set() or (self.stop is not None and self.stop.is_set())

    def take(self, count: int, name: str) -> None:
        with self.lock:
            self.total += count
            over = self.total > self.limit
        if over:
            raise refused(name, f"it inflates past {self.limit} bytes (max total size)")


def write_plan(
    archive: zipfile.ZipFile,
    zip_path: Path,
    plan: Plan,
    root: Path,
    name: str,
    *,
    max_total_bytes: int,
    max_ratio: int,
    stop: threading.Event | None,
    digests: Digests | None,
) -> list[Path]:
    """Write ``plan`` under ``root`` (resolved); the files in plan order."""
    shared = _Shared(
        root, name, limit=max_total_bytes, max_ratio=max_ratio, stop=stop, digests=digests
    )
    declared = sum(info.file_size for info, _ in plan)
    if len(plan) < 2 or declared < SPLIT_BYTES:
        return _write_share(archive, plan, shared)
    first, second = _halves(plan)
    outcome: list[list[Path] | BaseException] = []

    def other() -> None:
        try:
            with zip_path.open("rb") as raw, zipfile.ZipFile(raw) as own:
                outcome.append(_write_share(own, second, shared))
        except BaseException as exc:  # handed to the caller's thread below
            shared.failed.set()
            outcome.append(exc)

    helper = threading.Thread(target=other, name="unzip-share", daemon=True)
    helper.start()
    try:
        _write_share(archive, first, shared)
    except BaseException as exc:
        shared.failed.set()
        helper.join()
        cause = outcome[0]
        if isinstance(exc, StoppedError) and not isinstance(cause, list | StoppedError):
            raise cause from None  # this share only stopped because the other one failed
        raise
    helper.join()
    (result,) = outcome
    if isinstance(result, BaseException):
        raise result
    # Both shares wrote every entry, each where the plan puts it.
    return [root.joinpath(*parts) for _, parts in plan]


def _halves(plan: Plan) -> tuple[Plan, Plan]:
    """Two shares of about equal declared size, each in archive order."""
    shares: tuple[Plan, Plan] = ([], [])
    sizes = [0, 0]
    for item in sorted(plan, key=lambda item: -item[0].file_size):
        lighter = 0 if sizes[0] <= sizes[1] else 1
        shares[lighter].append(item)
        sizes[lighter] += item[0].file_size
    first, second = (sorted(share, key=lambda item: item[0].header_offset) for share in shares)
    return first, second


def _write_share(archive: zipfile.ZipFile, plan: Plan, shared: _Shared) -> list[Path]:
    root, name, max_ratio, digests = shared.root, shared.name, shared.max_ratio, shared.digests
    written: list[Path] = []
    for info, parts in plan:
        target = root.joinpath(*parts)
        if not target.is_relative_to(root):  # unreachable after _entry_parts; kept as a belt
            raise refused(name, f"entry {info.filename[:200]!r} points outside the job folder")
        limit = max(max_ratio * max(info.compress_size, 1), RATIO_FLOOR_BYTES)
        entry_bytes = 0
        hasher = hashlib.sha256() if digests is not None else None
        try:
            target.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o644)
        except OSError as exc:
            raise JobError(f"zip_art {name}: cannot write {info.filename[:200]!r} ({exc})") from exc
        with os.fdopen(fd, "wb") as out:
            try:
                with archive.open(info) as source:
                    while chunk := source.read(CHUNK_BYTES):
                        if shared.stopped():
                            raise StoppedError
                        if entry_bytes == 0:
                            refuse_nested(chunk, name, info)
                        entry_bytes += len(chunk)
                        shared.take(len(chunk), name)
                        if entry_bytes > limit:
                            raise refused(
                                name,
                                f"entry {info.filename[:200]!r} inflates more than {max_ratio} "
                                "times its compressed size (a zip bomb)",
                            )
                        if hasher is not None:
                            hasher.update(chunk)
                        _write(out, chunk, name, info)
            except (*READ_ERRORS, OSError) as exc:
                raise refused(
                    name, f"entry {info.filename[:200]!r} is corrupt or truncated ({exc})"
                ) from exc
        written.append(target)
        if digests is not None and hasher is not None:
            digests[target] = (hasher.hexdigest(), entry_bytes)
    return written


def _write(out: IO[bytes], chunk: bytes, name: str, info: zipfile.ZipInfo) -> None:
    try:
        out.write(chunk)
    except OSError as exc:
        raise JobError(
            f"zip_art {name}: cannot write {info.filename[:200]!r} ({exc.strerror}); "
            "check free disk space"
        ) from exc
