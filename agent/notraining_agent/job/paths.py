"""Sanitisers for names that come from a job and end up in a path (contract section 5).

Two strengths: :func:`safe_part` for output path parts (``country``, ``channel``,
``category``, ``label``, ``ntd_transaction_id``) keeps only letters, digits and
``-_.+=@,`` so the output URI needs no quoting anywhere (file:// or gs://);
:func:`safe_filename` for art file names keeps what a person typed (spaces,
accents, brackets) and removes only what could change the path or fool a reader.
Both return one path component that is never empty, ``.`` or ``..``.
"""

from __future__ import annotations

import hashlib
import unicodedata
from pathlib import PurePosixPath

from yarl import URL

PART_MAX_CHARS = 64
FILENAME_MAX_BYTES = 200
_PART_EXTRA = frozenset("-_.+=@,")
# Control, format (bidi overrides, zero-width), separators and private-use code points.
_UNSAFE_CATEGORIES = frozenset({"Cc", "Cf", "Cs", "Co", "Cn", "Zl", "Zp"})
_FILENAME_BANNED = frozenset('/\\:*?"<>|')
_MAX_SUFFIX = 16


def safe_part(text: str, *, max_chars: int = PART_MAX_CHARS) -> str:
    """One safe path component from ``text``: NFKC-normalised, allow-listed, bounded."""
    normalised = unicodedata.normalize("NFKC", text)
    chars = [ch if ch.isalnum() or ch in _PART_EXTRA else "_" for ch in normalised]
    if chars and chars[0] == ".":
        chars[0] = "_"  # no hidden folders, and never "." or ".."
    part = "".join(chars)[:max_chars]
    return part or "_"


ID_DIGEST_CHARS = 32
"""Hex digits of SHA-256 that keep sanitised ids apart: 128 bits, no collision by chance
or by search."""
_ID_MARK = "~"  # never produced by safe_part, so it marks the digested form


def id_folder(ntd_transaction_id: str) -> str:
    """The output folder of a job: one component, and distinct for distinct ids.

    An id that :func:`safe_part` keeps as it is names its folder as it is. Any other id
    (one that sanitising, NFKC or the 64-character bound would change) becomes its
    sanitised prefix, ``~`` and a digest of the id itself. ``safe_part`` never writes
    ``~``, so the two forms cannot meet, and the digest keeps ``ntd-4711/2`` apart from
    ``ntd-4711_2`` on every VM, with no shared state.
    """
    part = safe_part(ntd_transaction_id)
    if part == ntd_transaction_id:
        return part
    data = ntd_transaction_id.encode("utf-8", "surrogatepass")
    digest = hashlib.sha256(data).hexdigest()[:ID_DIGEST_CHARS]
    prefix = safe_part(ntd_transaction_id, max_chars=PART_MAX_CHARS - ID_DIGEST_CHARS - 1)
    return f"{prefix}{_ID_MARK}{digest}"


def safe_filename(name: str, *, max_bytes: int = FILENAME_MAX_BYTES) -> str:
    """A safe file name from ``name``: no separators or invisible characters, suffix kept."""
    normalised = unicodedata.normalize("NFC", name)
    cleaned = "".join(
        "_"
        if ch in _FILENAME_BANNED
        or unicodedata.category(ch) in _UNSAFE_CATEGORIES
        or (ch.isspace() and ch != " ")
        else ch
        for ch in normalised
    ).strip()
    if not cleaned.strip("."):
        return "_"
    return _truncate(cleaned, max_bytes)


def _truncate(name: str, max_bytes: int) -> str:
    """Cut the stem (not the suffix) until the UTF-8 form fits ``max_bytes``."""
    if len(name.encode("utf-8")) <= max_bytes:
        return name
    stem, dot, suffix = name.rpartition(".")
    if not dot or not stem or len(suffix) > _MAX_SUFFIX:
        stem, suffix = name, ""
    tail = f".{suffix}" if suffix else ""
    budget = max_bytes - len(tail.encode("utf-8"))
    cut = stem.encode("utf-8")[:budget].decode("utf-8", errors="ignore").rstrip()
    return (cut or "_") + tail


def url_basename(url: str) -> str:
    """The last path segment of ``url``, percent-decoded and sanitised; ``_`` when empty."""
    try:
        path = URL(url).path
    except (ValueError, TypeError):
        path = ""
    return safe_filename(PurePosixPath(path).name)
