"""Extract a job's zip without trusting anything it says about itself (contract section 5).

Refused: entries outside the folder (absolute, ``..``, drive letters, backslashes),
symlinks, devices, FIFOs and sockets (zip ``external_attr`` file types), links named
in a Unix extra field, encrypted entries, compression other than stored or deflate
(the others inflate without a memory bound), a name used twice or both as file and
folder, overlapping entries (the "better zip bomb" trick), more than ``max_entries``
entries (counted in the central directory before zipfile loads it) or folders, more
than ``max_total_bytes`` written, and an entry that inflates more than ``max_ratio``
times its compressed size. Sizes are counted while writing; header sizes are never
trusted. An entry that is itself an archive (zip, gzip, bzip2, xz, 7z, rar: read from
its first bytes, not its name) is refused, never opened: a package of arts holds
images, and a nested archive is how 42.zip-style bombs hide. ``__MACOSX/``,
``.DS_Store`` and ``._*`` files are skipped. On any failure the whole ``dest_dir``
is removed.
"""

from __future__ import annotations

import asyncio
import itertools
import lzma
import os
import re
import shutil
import stat
import struct
import threading
import unicodedata
import zipfile
import zlib
from pathlib import Path
from typing import IO

from agent.errors import InputRefusedError, JobError

DEFAULT_MAX_ENTRIES = 10_000
DEFAULT_MAX_RATIO = 100
RATIO_FLOOR_BYTES = 1024 * 1024  # small files may compress well without being bombs
MAX_NAME_BYTES = 1024
MAX_PART_BYTES = 255
MAX_CENTRAL_RECORD = 46 + 1024 + 1024  # fixed part + name + extra and comment budget
CHUNK_BYTES = 64 * 1024
STOP_WAIT_SECONDS = 10.0
_ZIP_MAGIC = (b"PK\x03\x04", b"PK\x05\x06")
_EOCD = struct.Struct("<4s4H2LH")
_LOCATOR = struct.Struct("<4sLQL")
_EOCD64 = struct.Struct("<4sQ2H2L4Q")
# Only these inflate in bounded steps: zipfile asks zlib for at most the bytes requested,
# but hands bzip2 and LZMA the whole compressed read at once, so a 300-byte bzip2 entry
# becomes gigabytes in memory before any size check runs.
_SUPPORTED = frozenset({zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED})
_METHODS = {zipfile.ZIP_BZIP2: "bzip2", zipfile.ZIP_LZMA: "LZMA", 9: "Deflate64"}
_UNIX_EXTRA = 0x000D
_UNIX_EXTRA_FIXED = 12  # atime, mtime, uid, gid
_FILE_KINDS = {
    stat.S_IFLNK: "a symbolic link",
    stat.S_IFCHR: "a character device",
    stat.S_IFBLK: "a block device",
    stat.S_IFIFO: "a FIFO",
    stat.S_IFSOCK: "a socket",
}
_READ_ERRORS = (
    zipfile.BadZipFile,
    zlib.error,
    lzma.LZMAError,
    EOFError,
    NotImplementedError,
    RuntimeError,
    ValueError,
)


class _StoppedError(Exception):
    """The async caller was cancelled; the thread stops at the next chunk."""


def _refused(zip_name: str, why: str) -> InputRefusedError:
    return InputRefusedError(f"zip_art {zip_name} refused: {why}")


async def extract_zip_in_thread(
    zip_path: Path,
    dest_dir: Path,
    *,
    max_total_bytes: int,
    max_entries: int = DEFAULT_MAX_ENTRIES,
    max_ratio: int = DEFAULT_MAX_RATIO,
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
        )
    )
    try:
        return await asyncio.shield(task)
    except asyncio.CancelledError:
        stop.set()
        await asyncio.wait({task}, timeout=STOP_WAIT_SECONDS)
        if task.done() and not task.cancelled():
            task.exception()  # retrieved: it is the expected _StoppedError
        raise


def extract_zip(
    zip_path: Path,
    dest_dir: Path,
    *,
    max_total_bytes: int,
    max_entries: int = DEFAULT_MAX_ENTRIES,
    max_ratio: int = DEFAULT_MAX_RATIO,
    stop: threading.Event | None = None,
) -> list[Path]:
    """Extract ``zip_path`` into ``dest_dir`` (created if missing, should be empty); list files."""
    name = zip_path.name
    _sniff(zip_path)
    try:
        with zip_path.open("rb") as raw:
            _count_entries(raw, name, max_entries)
        archive = zipfile.ZipFile(zip_path)
    except (*_READ_ERRORS, OSError) as exc:
        raise _refused(name, f"it is corrupt or truncated ({exc})") from exc
    dest_dir.mkdir(parents=True, exist_ok=True)
    try:
        with archive:
            plan = _plan(archive, name, max_entries)
            return _extract(
                archive,
                plan,
                dest_dir,
                name,
                max_total_bytes=max_total_bytes,
                max_ratio=max_ratio,
                stop=stop,
            )
    except BaseException:
        shutil.rmtree(dest_dir, ignore_errors=True)
        raise


def _sniff(zip_path: Path) -> None:
    with zip_path.open("rb") as handle:
        head = handle.read(512)
    if head.startswith(_ZIP_MAGIC):
        return
    text = head.lstrip().lower()
    if text.startswith((b"<!doctype html", b"<html", b"<?xml", b"<")):
        why = "it is an HTML/XML page, not a zip (the URL probably answers with a web page)"
    elif not head:
        why = "it is empty"
    else:
        why = f"it is not a zip archive (it starts with {head[:8].hex()})"
    raise _refused(zip_path.name, why)


def _count_entries(raw: IO[bytes], name: str, max_entries: int) -> None:
    """Count central-directory records before zipfile loads them all into memory.

    The records are located exactly as zipfile locates them (the last end record,
    a zip64 record right before its locator), so both read the same directory.
    """
    size = raw.seek(0, os.SEEK_END)
    tail_start = max(size - (_EOCD.size + 65_535), 0)
    raw.seek(tail_start)
    tail = raw.read()
    at = tail.rfind(b"PK\x05\x06")
    if at < 0 or len(tail) - at < _EOCD.size:
        raise _refused(name, "it is truncated or not a zip (no end-of-archive record)")
    end = tail_start + at
    entries, cd_size = _EOCD.unpack_from(tail, at)[4:6]
    zip64 = _zip64(raw, end, name)
    if zip64 is not None:
        end, entries, cd_size = zip64
    if entries > max_entries or cd_size > max_entries * MAX_CENTRAL_RECORD:
        raise _refused(name, f"it has more than {max_entries} entries")
    raw.seek(end - cd_size)
    directory = raw.read(cd_size)
    count, pos = 0, 0
    while pos + 46 <= len(directory):
        if directory[pos : pos + 4] != b"PK\x01\x02":
            raise _refused(name, "its central directory is corrupt")
        lengths = struct.unpack_from("<3H", directory, pos + 28)
        pos += 46 + sum(lengths)
        count += 1
        if count > max_entries:
            raise _refused(name, f"it has more than {max_entries} entries")


def _zip64(raw: IO[bytes], eocd_pos: int, name: str) -> tuple[int, int, int] | None:
    """(record position, entry count, directory size) from zip64 records, None without them."""
    locator_pos = eocd_pos - _LOCATOR.size
    if locator_pos < 0:
        return None
    raw.seek(locator_pos)
    if not raw.read(_LOCATOR.size).startswith(b"PK\x06\x07"):
        return None
    record_pos = locator_pos - _EOCD64.size
    if record_pos < 0:
        raise _refused(name, "its zip64 records are missing or corrupt")
    raw.seek(record_pos)
    record = raw.read(_EOCD64.size)
    if len(record) < _EOCD64.size or not record.startswith(b"PK\x06\x06"):
        raise _refused(name, "its zip64 records are missing or corrupt")
    fields = _EOCD64.unpack(record)
    return record_pos, fields[7], fields[8]


def _entry_parts(entry: str, name: str) -> tuple[str, ...]:
    """The safe relative path parts of an entry name, or InputRefusedError saying why."""
    shown = entry[:200]
    if len(entry.encode("utf-8", "surrogateescape")) > MAX_NAME_BYTES:
        raise _refused(name, f"entry {shown!r} has a name longer than {MAX_NAME_BYTES} bytes")
    if any(unicodedata.category(ch) == "Cc" for ch in entry):
        raise _refused(name, f"entry {shown!r} has control characters in its name")
    if "\\" in entry:
        raise _refused(name, f"entry {shown!r} uses backslashes (a Windows path)")
    if entry.startswith("/") or re.match(r"^[A-Za-z]:", entry):
        raise _refused(name, f"entry {shown!r} is an absolute path")
    parts = tuple(part for part in entry.rstrip("/").split("/") if part != ".")
    if ".." in parts:
        raise _refused(name, f"entry {shown!r} points outside the job folder (..)")
    if not parts or "" in parts:
        raise _refused(name, f"entry {shown!r} has an empty path segment")
    if any(len(part.encode("utf-8", "surrogateescape")) > MAX_PART_BYTES for part in parts):
        raise _refused(name, f"entry {shown!r} has a name part longer than {MAX_PART_BYTES} bytes")
    return parts


def _is_junk(parts: tuple[str, ...]) -> bool:
    return parts[0] == "__MACOSX" or parts[-1] == ".DS_Store" or parts[-1].startswith("._")


def _plan(
    archive: zipfile.ZipFile, name: str, max_entries: int
) -> list[tuple[zipfile.ZipInfo, tuple[str, ...]]]:
    """Check every entry before writing anything; the files to extract, in archive order."""
    infos = archive.infolist()
    if len(infos) > max_entries:
        raise _refused(name, f"it has more than {max_entries} entries")
    _check_overlap(infos, name)
    plan: list[tuple[zipfile.ZipInfo, tuple[str, ...]]] = []
    files: set[tuple[str, ...]] = set()
    folders: set[tuple[str, ...]] = set()
    for info in infos:
        parts = _entry_parts(info.filename, name)
        kind = _special_kind(info)
        if kind:
            raise _refused(name, f"entry {info.filename[:200]!r} is {kind}")
        if info.is_dir() or stat.S_ISDIR(info.external_attr >> 16) or _is_junk(parts):
            continue
        if info.flag_bits & 0x1:
            raise _refused(name, f"entry {info.filename[:200]!r} is encrypted")
        if info.compress_type not in _SUPPORTED:
            method = _METHODS.get(info.compress_type, f"method {info.compress_type}")
            raise _refused(
                name,
                f"entry {info.filename[:200]!r} uses {method} compression, which cannot be "
                "inflated in bounded memory; re-zip with deflate (any zip tool's default)",
            )
        key = tuple(unicodedata.normalize("NFC", part) for part in parts)
        if key in files:
            raise _refused(name, f"entry {info.filename[:200]!r} appears more than once")
        parents = {key[:i] for i in range(1, len(key))}
        if key in folders or parents & files:
            raise _refused(name, f"entry {info.filename[:200]!r} is used as file and folder")
        files.add(key)
        folders |= parents
        if len(folders) > max_entries:  # 500-deep unique paths: inodes and disk, no bytes
            raise _refused(name, f"it would create more than {max_entries} folders")
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


def _check_overlap(infos: list[zipfile.ZipInfo], name: str) -> None:
    """Refuse entries whose data overlap: many names over one compressed stream is a bomb."""
    ordered = sorted(infos, key=lambda info: info.header_offset)
    for current, following in itertools.pairwise(ordered):
        if following.header_offset < current.header_offset + 30 + current.compress_size:
            raise _refused(
                name,
                f"entries {current.filename[:100]!r} and {following.filename[:100]!r} overlap "
                "(a zip bomb trick)",
            )


def _extract(
    archive: zipfile.ZipFile,
    plan: list[tuple[zipfile.ZipInfo, tuple[str, ...]]],
    dest_dir: Path,
    name: str,
    *,
    max_total_bytes: int,
    max_ratio: int,
    stop: threading.Event | None,
) -> list[Path]:
    written: list[Path] = []
    total = 0
    root = dest_dir.resolve()
    for info, parts in plan:
        target = root.joinpath(*parts)
        if not target.is_relative_to(root):  # unreachable after _entry_parts; kept as a belt
            raise _refused(name, f"entry {info.filename[:200]!r} points outside the job folder")
        limit = max(max_ratio * max(info.compress_size, 1), RATIO_FLOOR_BYTES)
        entry_bytes = 0
        try:
            target.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o644)
        except OSError as exc:
            raise JobError(f"zip_art {name}: cannot write {info.filename[:200]!r} ({exc})") from exc
        with os.fdopen(fd, "wb") as out:
            try:
                with archive.open(info) as source:
                    while chunk := source.read(CHUNK_BYTES):
                        if stop is not None and stop.is_set():
                            raise _StoppedError
                        if entry_bytes == 0:
                            _refuse_nested(chunk, name, info)
                        entry_bytes += len(chunk)
                        total += len(chunk)
                        if total > max_total_bytes:
                            raise _refused(
                                name, f"it inflates past {max_total_bytes} bytes (max total size)"
                            )
                        if entry_bytes > limit:
                            raise _refused(
                                name,
                                f"entry {info.filename[:200]!r} inflates more than {max_ratio} "
                                "times its compressed size (a zip bomb)",
                            )
                        _write(out, chunk, name, info)
            except (*_READ_ERRORS, OSError) as exc:
                raise _refused(
                    name, f"entry {info.filename[:200]!r} is corrupt or truncated ({exc})"
                ) from exc
        written.append(target)
    return written


_ARCHIVE_MAGIC = (
    b"PK\x03\x04",  # zip
    b"PK\x05\x06",  # empty zip
    b"\x1f\x8b",  # gzip
    b"BZh",  # bzip2
    b"\xfd7zXZ\x00",  # xz
    b"7z\xbc\xaf\x27\x1c",  # 7z
    b"Rar!\x1a\x07",  # rar
)


def _refuse_nested(first_chunk: bytes, name: str, info: zipfile.ZipInfo) -> None:
    if first_chunk.startswith(_ARCHIVE_MAGIC):
        raise _refused(
            name,
            f"entry {info.filename[:200]!r} is itself an archive; nested archives are not "
            "opened (a zip bomb hides that way): put the images in one zip",
        )


def _write(out: IO[bytes], chunk: bytes, name: str, info: zipfile.ZipInfo) -> None:
    try:
        out.write(chunk)
    except OSError as exc:
        raise JobError(
            f"zip_art {name}: cannot write {info.filename[:200]!r} ({exc.strerror}); "
            "check free disk space"
        ) from exc
