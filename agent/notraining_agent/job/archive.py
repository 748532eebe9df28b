"""Extract a job's zip without trusting anything it says about itself (contract section 5).

Refused: entries outside the folder (absolute, ``..``, drive letters, backslashes),
symlinks, devices, FIFOs and sockets (zip ``external_attr`` file types), links named
in a Unix extra field, encrypted entries, compression other than stored or deflate
(the others inflate without a memory bound), a name used twice or both as file and
folder, overlapping entries (the "better zip bomb" trick), more than ``max_entries``
entries (counted in the central directory before zipfile loads it) or folders, more
than ``max_total_bytes`` written, and an entry that inflates more than ``max_ratio``
times its compressed size, where an entry's compressed extent must lie inside the
file and overlap no other (so the sizes the directory claims add up to at most the
archive's real size). Inflated sizes are counted while writing; header sizes are never
trusted. A folder entry that holds data is refused, not silently dropped. An entry
that is itself an archive (zip, gzip, bzip2, xz, 7z, rar: read from its first bytes,
not its name) is refused, never opened: a package of arts holds images, and a nested
archive is how 42.zip-style bombs hide. ``__MACOSX/``,
``.DS_Store`` and ``._*`` files are skipped. On any failure the whole ``dest_dir``
is removed. The checks on raw bytes (magic, end records, nested archives) are in
:mod:`notraining_agent.job.zipscan`.

Each file is hashed while it is written (``digests``), so the inventory never reads
the extracted arts back; the writing, on two threads for a big zip, is in
:mod:`notraining_agent.job.unpack` (issue 12).
"""

from __future__ import annotations

import asyncio
import itertools
import os
import re
import shutil
import stat
import struct
import threading
import unicodedata
import zipfile
from pathlib import Path

from notraining_agent.job.unpack import READ_ERRORS, write_plan
from notraining_agent.job.zipscan import count_entries, refused, sniff

DEFAULT_MAX_ENTRIES = 10_000
DEFAULT_MAX_RATIO = 100
MAX_NAME_BYTES = 1024
MAX_PART_BYTES = 255
STOP_WAIT_SECONDS = 10.0
# Only these inflate in bounded steps: zipfile asks zlib for at most the bytes requested,
# but hands bzip2 and LZMA the whole compressed read at once, so a 300-byte bzip2 entry
# becomes gigabytes in memory before any size check runs.
_SUPPORTED = frozenset({zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED})
_METHODS = {zipfile.ZIP_BZIP2: "bzip2", zipfile.ZIP_LZMA: "LZMA", 9: "Deflate64"}
_EMPTY_DEFLATE_BYTES = 2  # an empty deflate stream; a folder entry holds nothing more
_UNIX_EXTRA = 0x000D
_UNIX_EXTRA_FIXED = 12  # atime, mtime, uid, gid
_FILE_KINDS = {
    stat.S_IFLNK: "a symbolic link",
    stat.S_IFCHR: "a character device",
    stat.S_IFBLK: "a block device",
    stat.S_IFIFO: "a FIFO",
    stat.S_IFSOCK: "a socket",
}


async def extract_zip_in_thread(
    zip_path: Path,
    dest_dir: Path,
    *,
    max_total_bytes: int,
    max_entries: int = DEFAULT_MAX_ENTRIES,
    max_ratio: int = DEFAULT_MAX_RATIO,
    digests: dict[Path, tuple[str, int]] | None = None,
) -> list[Path]:
    """:func:`extract_zip` off the event loop; a cancel stops the thread and removes its output."""
    stop = threading.Event()
    task = asyncio.ensure_future(
        asyncio.to_thread(
            extract_zip,
            zip_path,
            dest_dir,
            max_total_bytes=max_total_bytes,
            max_entries=max_entries,
            max_ratio=max_ratio,
            stop=stop,
            digests=digests,
        )
    )
    try:
        return await asyncio.shield(task)
    except asyncio.CancelledError:
        stop.set()
        await asyncio.wait({task}, timeout=STOP_WAIT_SECONDS)
        if task.done() and not task.cancelled():
            task.exception()  # retrieved: it is the expected StoppedError
        raise


def extract_zip(
    zip_path: Path,
    dest_dir: Path,
    *,
    max_total_bytes: int,
    max_entries: int = DEFAULT_MAX_ENTRIES,
    max_ratio: int = DEFAULT_MAX_RATIO,
    stop: threading.Event | None = None,
    digests: dict[Path, tuple[str, int]] | None = None,
) -> list[Path]:
    """Extract ``zip_path`` into ``dest_dir`` (created if missing, should be empty); list files.

    When ``digests`` is given, it receives each written file's (sha256, size).
    """
    name = zip_path.name
    with zip_path.open("rb") as raw:  # one handle for the byte checks and zipfile
        sniff(raw, name)
        try:
            count_entries(raw, name, max_entries)
            archive = zipfile.ZipFile(raw)
        except (*READ_ERRORS, OSError) as exc:
            raise refused(name, f"it is corrupt or truncated ({exc})") from exc
        dest_dir.mkdir(parents=True, exist_ok=True)
        try:
            with archive:
                plan = _plan(archive, name, max_entries, os.fstat(raw.fileno()).st_size)
                return write_plan(
                    archive,
                    zip_path,
                    plan,
                    dest_dir.resolve(),
                    name,
                    max_total_bytes=max_total_bytes,
                    max_ratio=max_ratio,
                    stop=stop,
                    digests=digests,
                )
        except BaseException:
            shutil.rmtree(dest_dir, ignore_errors=True)
            raise


def _entry_parts(entry: str, name: str) -> tuple[str, ...]:
    """The safe relative path parts of an entry name, or InputRefusedError saying why."""
    shown = entry[:200]
    if len(entry.encode("utf-8", "surrogateescape")) > MAX_NAME_BYTES:
        raise refused(name, f"entry {shown!r} has a name longer than {MAX_NAME_BYTES} bytes")
    if any(unicodedata.category(ch) == "Cc" for ch in entry):
        raise refused(name, f"entry {shown!r} has control characters in its name")
    if "\\" in entry:
        raise refused(name, f"entry {shown!r} uses backslashes (a Windows path)")
    if entry.startswith("/") or re.match(r"^[A-Za-z]:", entry):
        raise refused(name, f"entry {shown!r} is an absolute path")
    parts = tuple(part for part in entry.rstrip("/").split("/") if part != ".")
    if ".." in parts:
        raise refused(name, f"entry {shown!r} points outside the job folder (..)")
    if not parts or "" in parts:
        raise refused(name, f"entry {shown!r} has an empty path segment")
    if any(len(part.encode("utf-8", "surrogateescape")) > MAX_PART_BYTES for part in parts):
        raise refused(name, f"entry {shown!r} has a name part longer than {MAX_PART_BYTES} bytes")
    return parts


def _is_junk(parts: tuple[str, ...]) -> bool:
    return parts[0] == "__MACOSX" or parts[-1] == ".DS_Store" or parts[-1].startswith("._")


def _plan(
    archive: zipfile.ZipFile, name: str, max_entries: int, archive_size: int
) -> list[tuple[zipfile.ZipInfo, tuple[str, ...]]]:
    """Check every entry before writing anything; the files to extract, in archive order."""
    infos = archive.infolist()
    if len(infos) > max_entries:
        raise refused(name, f"it has more than {max_entries} entries")
    _check_extents(infos, name, archive_size)
    plan: list[tuple[zipfile.ZipInfo, tuple[str, ...]]] = []
    files: set[tuple[str, ...]] = set()
    folders: set[tuple[str, ...]] = set()
    for info in infos:
        parts = _entry_parts(info.filename, name)
        kind = _special_kind(info)
        if kind:
            raise refused(name, f"entry {info.filename[:200]!r} is {kind}")
        if info.is_dir() or stat.S_ISDIR(info.external_attr >> 16):
            if info.file_size > 0 or info.compress_size > _EMPTY_DEFLATE_BYTES:
                raise refused(
                    name,
                    f"entry {info.filename[:200]!r} is a folder that holds data "
                    f"({info.file_size} bytes); re-zip the files as plain files",
                )
            continue
        if _is_junk(parts):
            continue
        if info.flag_bits & 0x1:
            raise refused(name, f"entry {info.filename[:200]!r} is encrypted")
        if info.compress_type not in _SUPPORTED:
            method = _METHODS.get(info.compress_type, f"method {info.compress_type}")
            raise refused(
                name,
                f"entry {info.filename[:200]!r} uses {method} compression, which cannot be "
                "inflated in bounded memory; re-zip with deflate (any zip tool's default)",
            )
        key = tuple(unicodedata.normalize("NFC", part) for part in parts)
        if key in files:
            raise refused(name, f"entry {info.filename[:200]!r} appears more than once")
        parents = {key[:i] for i in range(1, len(key))}
        if key in folders or parents & files:
            raise refused(name, f"entry {info.filename[:200]!r} is used as file and folder")
        files.add(key)
        folders |= parents
        if len(folders) > max_entries:  # 500-deep unique paths: inodes and disk, no bytes
            raise refused(name, f"it would create more than {max_entries} folders")
        plan.append((info, parts))
    return plan


def _special_kind(info: zipfile.ZipInfo) -> str | None:
    """What a non-regular entry is: its mode bits, or a link named in its Unix extra field."""
    kind = _FILE_KINDS.get(stat.S_IFMT(info.external_attr >> 16))
    if kind is None and _names_a_link_target(info.extra):
        kind = "a hard or symbolic link (its Unix extra field names a target)"
    return kind


def _names_a_link_target(extra: bytes) -> bool:
    """PKWARE's Unix extra field (0x000d) has data past its 12 fixed bytes only for links.

    zipfile ignores it, but other unzip tools make hard links from it; an archive that
    asks for one is hostile or broken either way, so it is refused, not half-honoured.
    """
    pos = 0
    while pos + 4 <= len(extra):
        header_id, size = struct.unpack_from("<2H", extra, pos)
        if header_id == _UNIX_EXTRA and size > _UNIX_EXTRA_FIXED:
            return True
        pos += 4 + size
    return False


def _check_extents(infos: list[zipfile.ZipInfo], name: str, archive_size: int) -> None:
    """Each entry's compressed data must lie inside the file, and no two may overlap.

    Many names over one compressed stream is a bomb; a ``compress_size`` past the end of
    the file would lift the ratio limit (which is based on it). Together the two make
    the directory's sizes add up to at most the archive's real size.
    """
    ordered = sorted(infos, key=lambda info: info.header_offset)
    for info in ordered:
        if info.header_offset + 30 + info.compress_size > archive_size:
            raise refused(
                name,
                f"entry {info.filename[:200]!r} claims {info.compress_size} compressed bytes, "
                f"more compressed bytes than the archive holds ({archive_size} bytes)",
            )
    for current, following in itertools.pairwise(ordered):
        if following.header_offset < current.header_offset + 30 + current.compress_size:
            raise refused(
                name,
                f"entries {current.filename[:100]!r} and {following.filename[:100]!r} overlap "
                "(a zip bomb trick)",
            )
