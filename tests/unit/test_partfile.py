"""A download's temporary file: one hop for a small body, nothing left after a discard."""

from __future__ import annotations

import hashlib
from pathlib import Path

from notraining_agent.job.partfile import PartFile, partial_name


def test_a_body_of_one_block_is_created_written_and_renamed_by_finish(tmp_path: Path) -> None:
    """finish() alone creates the file: no open step before it, no .part after it."""
    target = tmp_path / "a.png"
    part = PartFile(target, hashed=True)
    assert not part.partial.exists()  # nothing touches the disk before the first bytes
    part.finish([b"ab", b"cd"])
    assert target.read_bytes() == b"abcd"
    assert not part.partial.exists()
    assert part.sha256 == hashlib.sha256(b"abcd").hexdigest()


def test_blocks_are_appended_in_order_and_hashed_once(tmp_path: Path) -> None:
    target = tmp_path / "big.zip"
    part = PartFile(target, hashed=True)
    part.write([b"1" * 1000, b"2" * 10])
    assert part.partial.exists() and not target.exists()
    part.finish([b"3"])
    data = b"1" * 1000 + b"2" * 10 + b"3"
    assert target.read_bytes() == data
    assert part.sha256 == hashlib.sha256(data).hexdigest()


def test_an_empty_body_is_an_empty_file_and_unhashed_has_no_digest(tmp_path: Path) -> None:
    part = PartFile(tmp_path / "empty", hashed=False)
    part.finish([])
    assert (tmp_path / "empty").read_bytes() == b""
    assert part.sha256 == ""


def test_discard_removes_the_part_and_later_steps_do_nothing(tmp_path: Path) -> None:
    """A cancel's discard can come before a step still queued for its thread."""
    target = tmp_path / "a.png"
    part = PartFile(target, hashed=True)
    part.write([b"x"])
    part.discard()
    assert not part.partial.exists()
    part.write([b"y"])
    part.finish([b"z"])
    assert list(tmp_path.iterdir()) == []
    part.discard()  # twice is harmless


def test_the_partial_name_cannot_be_another_targets_name(tmp_path: Path) -> None:
    assert partial_name(tmp_path / "a.png").name == ".a.png:part"
