"""Atomic file replacement: what every durable write in the agent goes through.

A leaf module on purpose: the lifecycle's state store and the processors' manifests
both need it, and a processor must not import the lifecycle.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path


def atomic_write(path: Path, text: str, *, durable: bool = True) -> None:
    """Replace ``path`` with ``text``: temp file in the same folder, fsync, rename, fsync dir.

    ``durable=False`` skips both fsyncs: readers still never see half a file, but a
    power cut may lose it. For files that a crash makes worthless anyway (issue 12:
    two fsyncs are 1-20 ms on a busy disk).
    """
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
            if durable:
                fh.flush()
                os.fsync(fh.fileno())
        Path(tmp).replace(path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    if not durable:
        return
    dir_fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)
