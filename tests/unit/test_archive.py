"""Zip extraction against hostile archives: slips, links, devices, bombs, lies, junk."""

from __future__ import annotations

import asyncio
import hashlib
import io
import stat
import struct
import warnings
import zipfile
from pathlib import Path

import pytest
from notraining_agent.errors import InputRefusedError
from notraining_agent.job import unpack
from notraining_agent.job.archive import DEFAULT_MAX_ENTRIES, extract_zip, extract_zip_in_thread

BIG = 10**9


@pytest.fixture(autouse=True, params=["one thread", "two threads"])
def threads(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Every check holds whether the entries are written by one thread or split over two."""
    if request.param == "two threads":
        monkeypatch.setattr(unpack, "SPLIT_BYTES", 0)
    return str(request.param)


def make_zip(
    entries: list[tuple[str, bytes] | zipfile.ZipInfo | tuple[zipfile.ZipInfo, bytes]],
    *,
    compression: int = zipfile.ZIP_DEFLATED,
) -> bytes:
    """A zip with exactly these entries (duplicates allowed), built in memory."""
    buffer = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # zipfile warns on duplicate names
        with zipfile.ZipFile(buffer, "w", compression) as archive:
            for entry in entries:
                if isinstance(entry, zipfile.ZipInfo):
                    archive.writestr(entry, b"")
                else:
                    archive.writestr(entry[0], entry[1])
    return buffer.getvalue()


def typed(name: str, mode: int, data: bytes = b"target") -> tuple[zipfile.ZipInfo, bytes]:
    info = zipfile.ZipInfo(name)
    info.create_system = 3
    info.external_attr = mode << 16
    return info, data


def write(tmp_path: Path, data: bytes, name: str = "package.zip") -> Path:
    path = tmp_path / name
    path.write_bytes(data)
    return path


def refused(
    tmp_path: Path,
    data: bytes,
    match: str,
    *,
    max_total_bytes: int = BIG,
    max_entries: int = DEFAULT_MAX_ENTRIES,
) -> None:
    """Extraction is refused with ``match`` in the message and leaves nothing behind."""
    source = write(tmp_path, data)
    dest = tmp_path / "job" / "zip"
    with pytest.raises(InputRefusedError, match=match):
        extract_zip(source, dest, max_total_bytes=max_total_bytes, max_entries=max_entries)
    assert not dest.exists()
    assert {p.name for p in tmp_path.iterdir()} <= {"job", "package.zip"}


def test_extracts_files_skips_dirs_and_junk(tmp_path: Path) -> None:
    """Files come out under dest in order; folders, __MACOSX, .DS_Store and ._* are skipped."""
    data = make_zip(
        [
            zipfile.ZipInfo("POP/"),
            ("POP/a.png", b"A"),
            ("POP/sub/b.jpg", b"B"),
            ("./c.png", b"C"),
            ("__MACOSX/POP/._a.png", b"junk"),
            ("POP/.DS_Store", b"junk"),
            ("POP/._b.jpg", b"junk"),
        ]
    )
    dest = tmp_path / "zip"
    files = extract_zip(write(tmp_path, data), dest, max_total_bytes=BIG)
    assert [p.relative_to(dest).as_posix() for p in files] == [
        "POP/a.png",
        "POP/sub/b.jpg",
        "c.png",
    ]
    assert (dest / "POP" / "a.png").read_bytes() == b"A"


@pytest.mark.parametrize(
    "inner",
    [
        pytest.param(None, id="zip"),
        pytest.param(b"\x1f\x8b\x08\x00rest", id="gzip"),
        pytest.param(b"7z\xbc\xaf\x27\x1crest", id="7z"),
    ],
)
def test_nested_archive_is_refused_not_opened(tmp_path: Path, inner: bytes | None) -> None:
    """An entry that is itself an archive (by its bytes, whatever its name) is refused."""
    data = make_zip([("a.png", b"A"), ("innocent.png", inner or make_zip([("x.png", b"X")]))])
    with pytest.raises(InputRefusedError, match="is itself an archive"):
        extract_zip(write(tmp_path, data), tmp_path / "zip", max_total_bytes=BIG)
    assert not (tmp_path / "zip").exists()


@pytest.mark.parametrize(
    ("name", "match"),
    [
        ("../evil.txt", r"outside the job folder"),
        ("a/../../evil.txt", r"outside the job folder"),
        ("/etc/cron.d/evil", r"absolute path"),
        ("C:/Windows/evil.dll", r"absolute path"),
        ("c:evil", r"absolute path"),
        ("a\\..\\..\\evil.txt", r"backslashes"),
        ("a//b.txt", r"empty path segment"),
        ("a\x01b.txt", r"control characters"),
        ("x" * 300 + ".png", r"longer than 255 bytes"),
    ],
)
def test_unsafe_names(tmp_path: Path, name: str, match: str) -> None:
    """Traversal, absolute, drive-letter and backslash names are refused before writing."""
    refused(tmp_path, make_zip([("ok.png", b"ok"), (name, b"evil")]), match)
    assert not (tmp_path / "evil.txt").exists()


@pytest.mark.parametrize(
    ("mode", "kind"),
    [
        (stat.S_IFLNK | 0o777, "symbolic link"),
        (stat.S_IFCHR | 0o666, "character device"),
        (stat.S_IFBLK | 0o666, "block device"),
        (stat.S_IFIFO | 0o666, "FIFO"),
        (stat.S_IFSOCK | 0o666, "socket"),
    ],
)
def test_special_files(tmp_path: Path, mode: int, kind: str) -> None:
    """Symlinks, devices, FIFOs and sockets are refused."""
    refused(tmp_path, make_zip([typed("link.png", mode, b"/etc/passwd")]), kind)


def test_symlink_then_write_through_it(tmp_path: Path) -> None:
    """The classic pair (symlink dir, then a file inside it) is refused at the link."""
    data = make_zip([typed("d", stat.S_IFLNK | 0o777, str(tmp_path).encode()), ("d/evil", b"x")])
    refused(tmp_path, data, "symbolic link")


def test_duplicates_and_file_folder_clash(tmp_path: Path) -> None:
    """A name twice, or a name used as file and folder, is refused."""
    refused(tmp_path, make_zip([("a.png", b"1"), ("a.png", b"2")]), "more than once")
    refused(tmp_path, make_zip([("a", b"1"), ("a/b.png", b"2")]), "file and folder")
    refused(tmp_path, make_zip([("a/b.png", b"1"), ("a", b"2")]), "file and folder")


def test_ratio_bomb_refused_while_writing(tmp_path: Path) -> None:
    """One entry that inflates over max_ratio is stopped once it passes the limit."""
    refused(tmp_path, make_zip([("ok.png", b"ok"), ("bomb.bmp", bytes(30_000_000))]), "times its")


def test_total_size_bounded(tmp_path: Path) -> None:
    """The sum of inflated entries is bounded by max_total_bytes, counted while writing."""
    data = make_zip([(f"{i}.bin", bytes(range(256)) * 400) for i in range(5)])
    refused(tmp_path, data, "max total size", max_total_bytes=300_000)


def test_entry_count(tmp_path: Path) -> None:
    """More entries than max_entries is refused before zipfile loads them."""
    refused(
        tmp_path,
        make_zip([(f"{i}.png", b"x") for i in range(11)]),
        "more than 10 entries",
        max_entries=10,
    )


def test_entry_count_even_when_the_end_record_lies(tmp_path: Path) -> None:
    """An end record claiming 1 entry does not hide 20 in the central directory."""
    data = bytearray(make_zip([(f"{i}.png", b"x") for i in range(20)]))
    at = data.rfind(b"PK\x05\x06")
    struct.pack_into("<HH", data, at + 8, 1, 1)
    refused(tmp_path, bytes(data), "more than 10 entries", max_entries=10)


def test_zip64_entry_count(tmp_path: Path) -> None:
    """A zip64 archive with 65 536 entries is refused from its zip64 end record."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_STORED) as archive:
        for i in range(65_536):
            archive.writestr(zipfile.ZipInfo(f"{i}"), b"")
    refused(tmp_path, buffer.getvalue(), "more than 10000 entries")


def test_overlapping_entries(tmp_path: Path) -> None:
    """Two names over the same compressed data (the overlap bomb) are refused."""
    data = bytearray(make_zip([("a.bin", bytes(1000)), ("b.bin", bytes(1000))]))
    second = data.find(b"PK\x01\x02", data.find(b"PK\x01\x02") + 4)
    struct.pack_into("<L", data, second + 42, 0)
    refused(tmp_path, bytes(data), "overlap")


def test_encrypted_entry(tmp_path: Path) -> None:
    """An entry flagged as encrypted is refused."""
    data = bytearray(make_zip([("a.png", b"x")]))
    central = data.find(b"PK\x01\x02")
    struct.pack_into("<H", data, central + 8, 0x1)
    struct.pack_into("<H", data, 6, 0x1)
    refused(tmp_path, bytes(data), "encrypted")


@pytest.mark.parametrize(
    ("data", "match"),
    [
        (b"<!DOCTYPE html><html><body>Sign in</body></html>", "HTML"),
        (b"", "empty"),
        (b"\x89PNG\r\n\x1a\n....", "not a zip"),
        (b"PK\x03\x04garbage", "truncated"),
    ],
)
def test_not_a_zip(tmp_path: Path, data: bytes, match: str) -> None:
    """HTML, empty files and other bytes are refused with a reason."""
    refused(tmp_path, data, match)


def test_truncated_zip(tmp_path: Path) -> None:
    """A zip cut short (no end record) is refused as truncated."""
    data = make_zip([("a.png", bytes(range(256)) * 100)])
    refused(tmp_path, data[: len(data) // 2], "truncated")


def test_corrupt_entry_data_removes_partial_output(tmp_path: Path) -> None:
    """Damaged data in a later entry fails the job and removes what was already written."""
    data = bytearray(make_zip([("a.png", b"fine"), ("b.png", bytes(range(256)) * 200)]))
    second = data.find(b"PK\x03\x04", 4)
    data[second + 60 : second + 80] = bytes(20)
    refused(tmp_path, bytes(data), "corrupt or truncated")


async def test_async_wrapper_and_cancel(tmp_path: Path) -> None:
    """The async wrapper extracts off the loop; a cancel stops the thread and cleans up."""
    small = write(tmp_path, make_zip([("a.png", b"A")]), "small.zip")
    files = await extract_zip_in_thread(small, tmp_path / "ok", max_total_bytes=BIG)
    assert [p.name for p in files] == ["a.png"]
    big = write(
        tmp_path,
        make_zip([(f"{i}.bin", bytes(5_000_000)) for i in range(40)]),
        "big.zip",
    )
    task = asyncio.create_task(
        extract_zip_in_thread(big, tmp_path / "big", max_total_bytes=BIG, max_ratio=10_000)
    )
    await asyncio.sleep(0.05)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert not (tmp_path / "big").exists()


def test_directory_claiming_more_compressed_bytes_than_the_archive_holds(tmp_path: Path) -> None:
    """A central directory that lies about compress_size cannot lift the ratio limit (issue 14)."""
    data = bytearray(make_zip([("bomb.bmp", bytes(5_000_000))]))
    central = data.find(b"PK\x01\x02")
    struct.pack_into("<L", data, central + 20, 1_000_000_000)  # compressed size
    refused(tmp_path, bytes(data), "more compressed bytes than the archive holds")


def test_folder_entry_holding_data_is_refused(tmp_path: Path) -> None:
    """An entry whose mode bits say folder but which carries bytes is refused by name."""
    refused(tmp_path, make_zip([typed("photo.png", stat.S_IFDIR | 0o755, b"pixels")]), "photo.png")
    refused(tmp_path, make_zip([("pics/", b"data")]), "'pics/' is a folder")


def test_digests_are_taken_while_writing(tmp_path: Path) -> None:
    """Each extracted file's sha256 and size come out of the extraction itself (no re-read)."""
    big = bytes(range(256)) * 8192  # 2 MiB: more than one read
    data = make_zip([("a/one.jpg", b"one"), ("two.jpg", big)], compression=zipfile.ZIP_STORED)
    digests: dict[Path, tuple[str, int]] = {}
    files = extract_zip(
        write(tmp_path, data), tmp_path / "out", max_total_bytes=10**8, digests=digests
    )
    assert set(digests) == set(files)
    for path in files:
        content = path.read_bytes()
        assert digests[path] == (hashlib.sha256(content).hexdigest(), len(content))


def test_corrupt_entry_in_either_share_is_the_error_reported(tmp_path: Path) -> None:
    """Split over two threads, the damaged entry's refusal wins over the other share's stop."""
    entries = [("big.png", bytes(range(256)) * 400), ("mid.png", bytes(range(256)) * 200)]
    data = bytearray(make_zip([*entries, ("small.png", b"fine")]))
    second = data.find(b"PK\x03\x04", 4)
    data[second + 60 : second + 80] = bytes(20)
    refused(tmp_path, bytes(data), "'mid.png' is corrupt or truncated")


def test_files_come_back_in_archive_order(tmp_path: Path) -> None:
    """However the shares were cut, the files are listed in the archive's order."""
    sizes = [5, 300_000, 7, 200_000, 1, 100_000]
    data = make_zip([(f"{i}.bin", bytes(size)) for i, size in enumerate(sizes)])
    files = extract_zip(write(tmp_path, data), tmp_path / "out", max_total_bytes=BIG)
    assert [p.name for p in files] == [f"{i}.bin" for i in range(len(sizes))]
    assert [p.stat().st_size for p in files] == sizes
