"""Where built guest images and releases live between runs, keyed by their inputs.

The cache sits outside the clone (``NOTRAINING_BOOT_CACHE``, default
/var/cache/notraining-agent-boot): a warm cache saves the image build, a cold one
rebuilds it; a changed input gives a new key, never a stale image.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import shutil
import subprocess
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
BUILD_SCRIPT = Path(__file__).with_name("build-image.sh")
IMAGE_FILES = ("vmlinuz", "initrd.img", "rootfs.img", "ca.pem", "ca.key")


def cache_root() -> Path:
    """The cache folder, created on first use."""
    root = Path(os.environ.get("NOTRAINING_BOOT_CACHE", "/var/cache/notraining-agent-boot"))
    root.mkdir(parents=True, exist_ok=True)
    return root


def inputs_digest(files: Iterable[Path], extra: str = "") -> str:
    """A short digest of the files' names and contents plus ``extra``."""
    digest = hashlib.sha256(extra.encode())
    for path in files:
        digest.update(str(path.relative_to(REPO)).encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()[:16]


@dataclass(frozen=True)
class Image:
    """A built guest: kernel, initrd, raw root disk, and the test CA it trusts."""

    folder: Path
    suite: str
    built_now: bool

    def file(self, name: str) -> Path:
        """One of IMAGE_FILES."""
        return self.folder / name


def guest_image(suite: str) -> Image:
    """The cached image for ``suite``; builds it (under a lock) when missing."""
    digest = inputs_digest([BUILD_SCRIPT], extra=suite)
    folder = cache_root() / f"image-{suite}-{digest}"
    done = folder / ".complete"
    with (cache_root() / f".lock-{suite}").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if done.exists():
            return Image(folder, suite, built_now=False)
        # bash reads a script as it runs: run a copy of the hashed bytes, so an edit of
        # the script during a build can neither break it nor be built under the old key.
        snapshot = cache_root() / f".build-{suite}-{digest}.sh"
        snapshot.write_bytes(BUILD_SCRIPT.read_bytes())
        try:
            subprocess.run(["bash", str(snapshot), suite, str(folder)], check=True, timeout=1800)
        finally:
            snapshot.unlink(missing_ok=True)
        done.write_text("")
        # Older keys of this suite are stale for good: keep the disk for the new one.
        for old in cache_root().glob(f"image-{suite}-*"):
            if old != folder:
                shutil.rmtree(old, ignore_errors=True)
    return Image(folder, suite, built_now=True)
