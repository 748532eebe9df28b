"""Path sanitisers: output parts and art file names never escape their folder."""

from __future__ import annotations

from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st
from notraining_agent.job.paths import (
    FILENAME_MAX_BYTES,
    PART_MAX_CHARS,
    safe_filename,
    safe_part,
    url_basename,
)

HOSTILE = [
    "..",
    ".",
    "",
    "../../etc",
    "a/b",
    "a\\b",
    "\x00",
    "\u202egnp.exe",
    "\uff0f..\uff0f",
    "‥",
]


def test_safe_part_examples() -> None:
    """Separators, dots, controls and fullwidth look-alikes become underscores."""
    assert safe_part("MX") == "MX"
    assert safe_part("México") == "México"
    assert safe_part("") == "_"
    assert safe_part("..") == "_."
    assert safe_part(".") == "_"
    assert safe_part("../../etc/passwd") == "_._.._etc_passwd"
    assert safe_part("a/b\\c") == "a_b_c"
    assert safe_part("\uff0fetc") == "_etc"  # NFKC turns the fullwidth solidus into "/"
    assert safe_part("Summer Sale!") == "Summer_Sale_"
    assert safe_part("x" * 500) == "x" * PART_MAX_CHARS


def test_safe_filename_examples() -> None:
    """A file name keeps spaces and accents, loses separators and invisible characters."""
    assert safe_filename("Art 01 (final).png") == "Art 01 (final).png"
    assert safe_filename("../x.png") == ".._x.png"
    assert safe_filename("..") == "_"
    assert safe_filename("  ") == "_"
    assert safe_filename("a\u202egnp.exe") == "a_gnp.exe"
    assert safe_filename("a\nb.png") == "a_b.png"


def test_safe_filename_keeps_the_suffix_when_cut() -> None:
    """A long name is cut in its stem so the extension survives."""
    cut = safe_filename("é" * 400 + ".jpeg")
    assert cut.endswith(".jpeg")
    assert len(cut.encode("utf-8")) <= FILENAME_MAX_BYTES


def test_url_helpers() -> None:
    """Basenames are decoded and sanitised."""
    assert url_basename("http://h/a/Art%2001.png?x=1") == "Art 01.png"
    assert url_basename("http://h/") == "_"
    assert url_basename("gs://bucket/dir/x.jpg") == "x.jpg"


def _stays_inside(base: Path, part: str) -> bool:
    resolved = (base / part).resolve()
    return resolved.parent == base.resolve() and resolved != base.resolve()


@settings(max_examples=500)
@given(st.one_of(st.text(), st.sampled_from(HOSTILE)))
def test_safe_part_never_escapes(text: str) -> None:
    """Property: safe_part gives one bounded, non-empty component that stays in its folder."""
    part = safe_part(text)
    assert part and part not in (".", "..")
    assert "/" not in part and "\\" not in part and "\x00" not in part
    assert len(part) <= PART_MAX_CHARS
    assert _stays_inside(Path("/srv/out"), part)


@settings(max_examples=500)
@given(st.one_of(st.text(), st.sampled_from(HOSTILE)))
def test_safe_filename_never_escapes(text: str) -> None:
    """Property: safe_filename gives one bounded, non-empty component that stays in its folder."""
    name = safe_filename(text)
    assert name and name.strip(".")
    assert "/" not in name and "\\" not in name and "\x00" not in name
    assert len(name.encode("utf-8")) <= FILENAME_MAX_BYTES
    assert _stays_inside(Path("/srv/out"), name)
