"""Hostile zips, built in memory: one function per attack of issue 3, item 6.

Each returns the archive's bytes; none needs a file on disk or more than a few
hundred kilobytes, so every attack can be served by the art emulator as a job's
``zip_art``.
"""

from __future__ import annotations

import bz2
import io
import stat
import struct
import warnings
import zipfile
import zlib

PNG = (
    b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00\x00\x01\x00\x00\x00\x01\x08\x06\x00\x00\x00"
    b"\x1f\x15\xc4\x89\x00\x00\x00\rIDATx\x9cc\xf8\x0f\x00\x00\x01\x01\x00\x05\x18\xd8N\xb1"
    b"\x00\x00\x00\x00IEND\xaeB`\x82"
)
"""A valid 1x1 PNG: the harmless entry next to each hostile one."""


def _zip(*entries: tuple[zipfile.ZipInfo | str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for info, data in entries:
            archive.writestr(info, data)
    return buffer.getvalue()


def _typed(name: str, file_type: int) -> zipfile.ZipInfo:
    info = zipfile.ZipInfo(name)
    info.external_attr = (file_type | 0o644) << 16
    info.create_system = 3  # Unix, so tools read the mode bits
    return info


def traversal(depth: int = 3) -> bytes:
    """An entry that climbs ``depth`` folders up: ``../../../escaped.txt``."""
    return _zip(("ok.png", PNG), ("../" * depth + "escaped.txt", b"pwned"))


def absolute(target: str) -> bytes:
    """An entry named by an absolute path (``target``, e.g. a file next to the job folder)."""
    return _zip(("ok.png", PNG), (target, b"pwned"))


def symlink(target: str) -> bytes:
    """A symlink entry pointing at ``target``, then a file written "through" it."""
    return _zip(("ok.png", PNG), (_typed("link", stat.S_IFLNK), target.encode()))


def hardlink(target: str) -> bytes:
    """An entry whose PKWARE Unix extra field (0x000d) asks for a hard link to ``target``."""
    info = zipfile.ZipInfo("passwd")
    link = target.encode()
    info.extra = struct.pack("<2H2L2H", 0x000D, 12 + len(link), 0, 0, 0, 0) + link
    return _zip(("ok.png", PNG), (info, b""))


def device() -> bytes:
    """A character-device entry (what ``/dev/zero`` looks like in a zip)."""
    return _zip(("ok.png", PNG), (_typed("zero", stat.S_IFCHR), b""))


def named_twice() -> bytes:
    """The same name twice: which copy wins depends on the tool, so neither may."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive, warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # zipfile warns; the duplicate is the point
        archive.writestr("art.png", PNG)
        archive.writestr("art.png", b"other bytes")
    return buffer.getvalue()


def nested(levels: int = 4, copies: int = 10, leaf_bytes: int = 1024 * 1024) -> bytes:
    """42.zip in miniature: ``copies`` zips per level, ``levels`` deep, zeros at the leaves.

    Fully unpacked it would be ``copies**levels * leaf_bytes`` (10 GB by default);
    the extractor must keep the inner zips as files and never open them.
    """
    data = _zip(("zeros.bin", bytes(leaf_bytes)))
    for level in range(levels):
        data = _zip(*((f"l{level}-{i}.zip", data) for i in range(copies)))
    return data


def high_ratio(size: int = 50 * 1024 * 1024) -> bytes:
    """One entry of ``size`` zeros: about 1000:1, far past the ratio limit."""
    return _zip(("ok.png", PNG), ("zeros.png", bytes(size)))


def overlapping(names: int = 50) -> bytes:
    """Many central-directory names over one compressed stream (Fifield's overlap bomb)."""
    one = _zip(("base.bin", bytes(1024 * 1024)))
    end = one.rfind(b"PK\x05\x06")
    central = one.rfind(b"PK\x01\x02", 0, end)
    record = one[central:end]
    name_len = struct.unpack_from("<H", record, 28)[0]
    fixed, rest = record[:46], record[46 + name_len :]
    records = [
        fixed[:28] + struct.pack("<H", len(n)) + fixed[30:] + n + rest
        for n in (f"f{i:04d}.bin".encode() for i in range(names))
    ]
    directory = b"".join(records)
    eocd = struct.pack("<4s4H2LH", b"PK\x05\x06", 0, 0, names, names, len(directory), central, 0)
    return one[:central] + directory + eocd


def many_entries(count: int) -> bytes:
    """``count`` empty files: more entries than the limit when ``count`` exceeds it."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_STORED) as archive:
        for index in range(count):
            archive.writestr(f"{index:05x}", b"")
    return buffer.getvalue()


def deep_folders(entries: int = 25, depth: int = 500) -> bytes:
    """Empty files under unique ``depth``-deep paths: folders cost inodes, not bytes."""
    return _zip(*((f"{i:x}/" + "d/" * (depth - 2) + "f", b"") for i in range(entries)))


def bzip2_bomb(size: int = 200 * 1024 * 1024) -> bytes:
    """A bzip2 entry of ``size`` zeros in about 300 bytes (zipfile inflates it in one go)."""
    compressor = bz2.BZ2Compressor(9)
    step = bytes(8 * 1024 * 1024)
    raw = b"".join(compressor.compress(step) for _ in range(size // len(step)))
    raw += compressor.flush()
    crc = 0
    for _ in range(size // len(step)):
        crc = zlib.crc32(step, crc)
    return _raw_entry("zeros.bin", raw, zipfile.ZIP_BZIP2, size, crc)


def _raw_entry(name: str, raw: bytes, method: int, size: int, crc: int) -> bytes:
    """A one-entry zip holding ``raw`` as already-compressed data of ``method``."""
    data = bytearray(_stored(name, raw))
    for offset, where in ((0, 8), (data.rfind(b"PK\x01\x02"), 10)):
        struct.pack_into("<H", data, offset + where, method)
        struct.pack_into("<L", data, offset + where + 6, crc)
        struct.pack_into("<L", data, offset + where + 14, size)
    return bytes(data)


def _stored(name: str, raw: bytes) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_STORED) as archive:
        archive.writestr(name, raw)
    return buffer.getvalue()


def total_over(limit: int, entry_bytes: int = 1_000_000) -> bytes:
    """Entries that each pass the ratio rule but together inflate past ``limit`` bytes."""
    count = limit // entry_bytes + 2
    return _zip(*((f"part{i}.bin", bytes(entry_bytes)) for i in range(count)))


def truncated() -> bytes:
    """A valid zip cut in half: no end-of-archive record."""
    whole = _zip(("ok.png", PNG), ("big.bin", bytes(200_000)))
    return whole[: len(whole) // 2]


def corrupt() -> bytes:
    """A zip whose compressed data was damaged: the directory is fine, the inflate is not."""
    whole = bytearray(_zip(("ok.png", PNG), ("data.bin", bytes(range(256)) * 400)))
    start = whole.find(b"data.bin") + len(b"data.bin")
    for offset in range(start + 10, start + 60):
        whole[offset] ^= 0xFF
    return bytes(whole)


HTML = b"<!DOCTYPE html>\n<html><head><title>Sign in</title></head><body>Log in</body></html>\n"
"""What a share link answers when it wants a login: a web page, not a zip."""
