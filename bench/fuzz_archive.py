"""Coverage-guided fuzzing of the zip extractor (issue 3, item 7), run by ``make fuzz``.

    python bench/fuzz_archive.py -max_total_time=120 [corpus_dir]

Each input becomes a zip, either as raw bytes or built from the input's choices
(entry names, file types, compression, sizes, then a few bytes flipped), and is
extracted into a fresh folder with small limits. Two outcomes are allowed: files
inside the folder, or InputRefusedError with the folder gone. Anything else is a
finding and atheris stops with the input saved: another exception, a file or link
outside the folder, a symlink anywhere, or more bytes on disk than the limit.
Not run in CI: coverage-guided fuzzing needs minutes to be worth anything.
"""

from __future__ import annotations

import atexit
import io
import os
import shutil
import stat
import sys
import tempfile
import warnings
from pathlib import Path

import atheris  # type: ignore[import-untyped, unused-ignore]  # make fuzz installs it

with atheris.instrument_imports():  # zipfile too: its parsing is what a hostile zip drives
    import zipfile

    from notraining_agent.errors import InputRefusedError
    from notraining_agent.job import archive

MAX_TOTAL_BYTES = 256 * 1024
MAX_ENTRIES = 64
# tmpfs, for millions of tiny writes; mkdtemp makes a private folder inside it.
_RAM = "/dev/shm" if Path("/dev/shm").is_dir() else None  # noqa: S108 - see above
ROOT = Path(tempfile.mkdtemp(prefix="fuzz-archive-", dir=_RAM))
atexit.register(shutil.rmtree, ROOT, ignore_errors=True)  # libFuzzer ends with exit()
warnings.simplefilter("ignore", UserWarning)  # zipfile warns on the duplicate names we make
NAMES = ["a.png", "../x", "/abs", "d/", "d/e.png", "C:\\w", "a.png", "__MACOSX/._a", "é", ""]
TYPES = [stat.S_IFREG, stat.S_IFDIR, stat.S_IFLNK, stat.S_IFCHR, stat.S_IFIFO, 0]
METHODS = [zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED, zipfile.ZIP_BZIP2, zipfile.ZIP_LZMA]


def _built(data: atheris.FuzzedDataProvider) -> bytes:
    """A zip made from the input's choices, then damaged at a few chosen offsets."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as made:
        for _ in range(data.ConsumeIntInRange(0, 6)):
            name = (
                data.PickValueInList(NAMES)
                if data.ConsumeBool()
                else data.ConsumeUnicodeNoSurrogates(data.ConsumeIntInRange(1, 40))
            ) or "x"
            info = zipfile.ZipInfo(name)
            info.compress_type = data.PickValueInList(METHODS)
            info.external_attr = (data.PickValueInList(TYPES) | 0o644) << 16
            if data.ConsumeBool():
                info.extra = data.ConsumeBytes(data.ConsumeIntInRange(0, 32))
            size = data.ConsumeIntInRange(0, 2 * MAX_TOTAL_BYTES)
            fill = data.ConsumeBytes(1) or b"\0"
            try:
                made.writestr(info, fill * size)
            except (ValueError, OSError, zipfile.BadZipFile):
                continue  # zipfile refused to write it: not an input the agent can receive
    raw = bytearray(buffer.getvalue())
    for _ in range(data.ConsumeIntInRange(0, 4)):
        if raw:
            raw[data.ConsumeIntInRange(0, len(raw) - 1)] = data.ConsumeIntInRange(0, 255)
    return bytes(raw)


def _files(folder: Path) -> list[Path]:
    return [Path(top) / name for top, dirs, files in os.walk(folder) for name in dirs + files]


def test_one_input(raw: bytes) -> None:
    """Extract one fuzzed zip and check the outcome is one of the two allowed."""
    data = atheris.FuzzedDataProvider(raw)
    blob = _built(data) if data.ConsumeBool() else data.ConsumeBytes(len(raw))
    work = Path(tempfile.mkdtemp(dir=ROOT))
    try:
        zip_path = work / "in.zip"
        zip_path.write_bytes(blob)
        dest = work / "job" / "zip"
        try:
            written = archive.extract_zip(
                zip_path, dest, max_total_bytes=MAX_TOTAL_BYTES, max_entries=MAX_ENTRIES
            )
        except InputRefusedError:
            written = []
            if dest.exists():
                raise AssertionError("a refused zip left its folder behind") from None
        everything = _files(work)
        outside = [p for p in everything if p != zip_path and not p.is_relative_to(work / "job")]
        if outside:
            raise AssertionError(f"written outside the job folder: {outside}")
        if any(p.is_symlink() for p in everything):
            raise AssertionError("a symlink was created")
        on_disk = sum(p.stat().st_size for p in written)
        if on_disk > MAX_TOTAL_BYTES:
            raise AssertionError(f"{on_disk} bytes written, over the {MAX_TOTAL_BYTES} limit")
        if any(not p.resolve().is_relative_to(dest.resolve()) for p in written):
            raise AssertionError("a written file resolves outside the folder")
    finally:
        shutil.rmtree(work, ignore_errors=True)


def main() -> None:
    """Hand the target to libFuzzer; its flags (-max_total_time, -runs, corpus) pass through."""
    atheris.Setup(sys.argv, test_one_input)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
