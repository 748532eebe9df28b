"""What a zip's own bytes say, read before zipfile is trusted with them.

Kept apart from :mod:`notraining_agent.job.archive` (the extraction) because these checks work on
raw bytes, not on zipfile's view: the file's magic, the end-of-central-directory and
zip64 records (so the entries are counted before zipfile loads them all), and the
first bytes of an entry that would be a nested archive.
"""

from __future__ import annotations

import os
import struct
import zipfile
from typing import IO

from notraining_agent.errors import InputRefusedError

MAX_CENTRAL_RECORD = 46 + 1024 + 1024  # fixed part + name + extra and comment budget
_ZIP_MAGIC = (b"PK\x03\x04", b"PK\x05\x06")
_EOCD = struct.Struct("<4s4H2LH")
_LOCATOR = struct.Struct("<4sLQL")
_EOCD64 = struct.Struct("<4sQ2H2L4Q")
_ARCHIVE_MAGIC = (
    b"PK\x03\x04",  # zip
    b"PK\x05\x06",  # empty zip
    b"\x1f\x8b",  # gzip
    b"BZh",  # bzip2
    b"\xfd7zXZ\x00",  # xz
    b"7z\xbc\xaf\x27\x1c",  # 7z
    b"Rar!\x1a\x07",  # rar
)


def refused(zip_name: str, why: str) -> InputRefusedError:
    """The one shape of every refusal of a job's zip, so operators can grep for it."""
    return InputRefusedError(f"zip_art {zip_name} refused: {why}")


def sniff(raw: IO[bytes], name: str) -> None:
    """Refuse a file that is not a zip by its first bytes, saying what it looks like."""
    raw.seek(0)
    head = raw.read(512)
    if head.startswith(_ZIP_MAGIC):
        return
    text = head.lstrip().lower()
    if text.startswith((b"<!doctype html", b"<html", b"<?xml", b"<")):
        why = "it is an HTML/XML page, not a zip (the URL probably answers with a web page)"
    elif not head:
        why = "it is empty"
    else:
        why = f"it is not a zip archive (it starts with {head[:8].hex()})"
    raise refused(name, why)


def count_entries(raw: IO[bytes], name: str, max_entries: int) -> None:
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
        raise refused(name, "it is truncated or not a zip (no end-of-archive record)")
    end = tail_start + at
    entries, cd_size = _EOCD.unpack_from(tail, at)[4:6]
    zip64 = _zip64(raw, end, name)
    if zip64 is not None:
        end, entries, cd_size = zip64
    if entries > max_entries or cd_size > max_entries * MAX_CENTRAL_RECORD:
        raise refused(name, f"it has more than {max_entries} entries")
    raw.seek(end - cd_size)
    directory = raw.read(cd_size)
    count, pos = 0, 0
    while pos + 46 <= len(directory):
        if directory[pos : pos + 4] != b"PK\x01\x02":
            raise refused(name, "its central directory is corrupt")
        lengths = struct.unpack_from("<3H", directory, pos + 28)
        pos += 46 + sum(lengths)
        count += 1
        if count > max_entries:
            raise refused(name, f"it has more than {max_entries} entries")


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
        raise refused(name, "its zip64 records are missing or corrupt")
    raw.seek(record_pos)
    record = raw.read(_EOCD64.size)
    if len(record) < _EOCD64.size or not record.startswith(b"PK\x06\x06"):
        raise refused(name, "its zip64 records are missing or corrupt")
    fields = _EOCD64.unpack(record)
    return record_pos, fields[7], fields[8]


def refuse_nested(first_chunk: bytes, name: str, info: zipfile.ZipInfo) -> None:
    """Refuse an entry whose first bytes are an archive's: nested archives are never opened."""
    if first_chunk.startswith(_ARCHIVE_MAGIC):
        raise refused(
            name,
            f"entry {info.filename[:200]!r} is itself an archive; nested archives are not "
            "opened (a zip bomb hides that way): put the images in one zip",
        )
