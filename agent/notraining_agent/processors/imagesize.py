"""An image's format and size from its first bytes, for the formats arts come in.

JPEG, PNG, GIF, WebP and BMP are read here, from their headers only: a JPEG's
markers are walked (seeking over each segment) to its frame header, and nothing is
ever decoded. This costs microseconds per file, where opening each file with Pillow
costs about a millisecond, and it keeps Pillow (2.5 MiB) out of the process for the
usual job (issue 12). Anything else is handed to Pillow's own header parsing.
Format names are Pillow's, so the manifest reads the same either way.
"""

from __future__ import annotations

import struct
from typing import BinaryIO

MAX_PIXELS = 2 * 89_478_485
"""Pillow's DecompressionBombError threshold (twice ``Image.MAX_IMAGE_PIXELS``)."""

MAX_JPEG_MARKERS = 1024
"""Segments walked before the frame header; real files have a handful."""

_PNG = b"\x89PNG\r\n\x1a\n"
# Start-of-frame markers: C0-CF except DHT (C4), JPG (C8) and DAC (CC).
_SOF = frozenset(range(0xC0, 0xD0)) - {0xC4, 0xC8, 0xCC}
# Markers that stand alone, without a length: TEM, RST0-7, SOI.
_STANDALONE = frozenset({0x01, *range(0xD0, 0xD9)})

Header = tuple[str | None, int | None, int | None, str | None]
"""(format, width, height, problem): problem is None when the header was read."""


class UnknownFormatError(Exception):
    """The first bytes are none of the formats read here."""


def read_known(handle: BinaryIO) -> Header:
    """The header of a JPEG, PNG, GIF, WebP or BMP; UnknownFormatError for other files."""
    head = handle.read(32)
    if head.startswith(b"\xff\xd8\xff"):
        return _checked("JPEG", _jpeg_size(handle))
    if head.startswith(_PNG):
        if head[12:16] != b"IHDR":
            return None, None, None, "a PNG without its IHDR header"
        return _checked("PNG", struct.unpack(">II", head[16:24]))
    if head[:6] in (b"GIF87a", b"GIF89a"):
        return _checked("GIF", struct.unpack("<HH", head[6:10]))
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return _checked("WEBP", _webp_size(head))
    if head[:2] == b"BM" and len(head) >= 26:
        width, height = struct.unpack("<ii", head[18:26])
        return _checked("BMP", (width, abs(height)))
    raise UnknownFormatError


def _checked(image_format: str, size: tuple[int, int] | None) -> Header:
    if size is None:
        return None, None, None, f"a {image_format} whose header is corrupt or truncated"
    width, height = size
    if width <= 0 or height <= 0:
        return None, None, None, f"a {image_format} whose header gives no size"
    if width * height > MAX_PIXELS:
        return None, None, None, "its header claims too many pixels"
    return image_format, width, height, None


def _jpeg_size(handle: BinaryIO) -> tuple[int, int] | None:  # noqa: PLR0911 - a walk of early exits
    """Walk the markers after SOI to the first start-of-frame; (width, height) or None."""
    handle.seek(2)
    for _ in range(MAX_JPEG_MARKERS):
        byte = handle.read(1)
        if byte != b"\xff":
            return None
        marker = handle.read(1)
        while marker == b"\xff":  # fill bytes
            marker = handle.read(1)
        if not marker:
            return None
        code = marker[0]
        if code in _STANDALONE:
            continue
        raw = handle.read(2)
        if len(raw) < 2:
            return None
        (length,) = struct.unpack(">H", raw)
        if length < 2:
            return None
        if code in _SOF:
            frame = handle.read(5)
            if len(frame) < 5:
                return None
            height, width = struct.unpack(">HH", frame[1:5])
            return width, height
        if code == 0xD9:  # EOI before any frame
            return None
        handle.seek(length - 2, 1)
    return None


def _webp_size(head: bytes) -> tuple[int, int] | None:
    chunk = head[12:16]
    if chunk == b"VP8 " and head[23:26] == b"\x9d\x01\x2a":
        width, height = struct.unpack("<HH", head[26:30])
        return width & 0x3FFF, height & 0x3FFF
    if chunk == b"VP8L" and head[20:21] == b"\x2f":
        bits = int.from_bytes(head[21:25], "little")
        return (bits & 0x3FFF) + 1, ((bits >> 14) & 0x3FFF) + 1
    if chunk == b"VP8X":
        return int.from_bytes(head[24:27], "little") + 1, int.from_bytes(head[27:30], "little") + 1
    return None
