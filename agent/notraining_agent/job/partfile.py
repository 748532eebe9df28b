"""A download's temporary file, written off the event loop in as few thread hops as possible.

A thread hop (``asyncio.to_thread``) costs about 85 µs of CPU on the project's VMs,
more than writing 256 kB to the page cache, and a download used to take three of them
per file (open, finish, discard) even when its body came in one block (issue 12). Here
the file is created by its first write, a body that fits in one block is created,
written, closed and renamed in a single hop, and nothing runs after a success.

Every step holds the file's lock and does nothing once the file is discarded, so a
discard that comes while a step is still in its thread (a cancel) waits for that step,
then removes what it made; the ``.part`` never outlives a failed download.
"""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import IO


def partial_name(target: Path) -> Path:
    """The temporary name of ``target``; ``:`` is never in a target (see safe_filename).

    A dot-name such as ``.a.png.part`` could be another URL's target, and one download
    would then write over the other's file.
    """
    return target.with_name(f".{target.name}:part")


class PartFile:
    """``target``'s bytes go to its ``.part`` (hashed on the way), renamed when complete.

    :meth:`write`, :meth:`finish` and :meth:`discard` block: call them in a thread.
    """

    def __init__(self, target: Path, *, hashed: bool) -> None:
        self.target = target
        self.partial = partial_name(target)
        self._hasher = hashlib.sha256() if hashed else None
        self._handle: IO[bytes] | None = None
        self._lock = threading.Lock()
        self._discarded = False

    @property
    def sha256(self) -> str:
        """The hex digest of every byte written; empty when not hashed."""
        return self._hasher.hexdigest() if self._hasher is not None else ""

    def write(self, chunks: Sequence[bytes]) -> None:
        """Hash and append ``chunks`` (each as it came: no joined copy)."""
        with self._lock:
            self._append(chunks)

    def finish(self, chunks: Sequence[bytes]) -> None:
        """Append the last ``chunks``, close, and rename the ``.part`` to ``target``."""
        with self._lock:
            handle = self._append(chunks)
            if handle is None:
                return
            self._handle = None
            handle.close()
            self.partial.replace(self.target)

    def discard(self) -> None:
        """Close and remove the ``.part``; later steps do nothing."""
        with self._lock:
            self._discarded = True
            handle, self._handle = self._handle, None
            try:
                if handle is not None:
                    handle.close()
            finally:
                self.partial.unlink(missing_ok=True)

    def _append(self, chunks: Sequence[bytes]) -> IO[bytes] | None:
        if self._discarded:
            return None
        handle = self._handle
        if handle is None:
            handle = self._handle = self.partial.open("xb")
        hasher = self._hasher
        for chunk in chunks:
            if hasher is not None:
                hasher.update(chunk)
            handle.write(chunk)
        return handle
