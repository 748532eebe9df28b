"""Publishing: sanitised final URI, file:// copy that replaces an earlier attempt, gs:// upload."""

from __future__ import annotations

from pathlib import Path

import pytest
from notraining_agent.errors import ConfigError
from notraining_agent.job.output import output_location, publish
from notraining_testkit.emulators._server import served
from notraining_testkit.emulators.gcs import GcsEmulator


def tree(root: Path, files: dict[str, bytes]) -> Path:
    for name, data in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_bytes(data)
    return root


def test_output_location_sanitises_parts() -> None:
    """Hostile parts cannot add folders or climb out of output_uri."""
    uri = output_location("gs://bucket/results/", ["../..", "a/b", "POP", "", "42"])
    assert uri == "gs://bucket/results/_._../a_b/POP/_/42"


async def test_publish_file_uri(tmp_path: Path) -> None:
    """file:// copies the tree to output_uri/<parts> and returns that URI."""
    local = tree(tmp_path / "out", {"manifest.json": b"{}", "sub/x.txt": b"x"})
    base = tmp_path / "results"
    uri = await publish(local, f"file://{base}", ["MX", "instagram", "POP", "summer", "42"])
    target = base / "MX" / "instagram" / "POP" / "summer" / "42"
    assert uri == f"file://{target}"
    assert (target / "manifest.json").read_bytes() == b"{}"
    assert (target / "sub" / "x.txt").read_bytes() == b"x"


async def test_publish_replaces_an_earlier_attempt(tmp_path: Path) -> None:
    """A re-run's output replaces the old folder entirely; no temp folders stay behind."""
    base = tmp_path / "results"
    parts = ["MX", "ig", "POP", "l", "42"]
    await publish(tree(tmp_path / "one", {"old.txt": b"1"}), f"file://{base}", parts)
    await publish(tree(tmp_path / "two", {"new.txt": b"2"}), f"file://{base}", parts)
    folder = base.joinpath(*parts)
    assert sorted(p.name for p in folder.iterdir()) == ["new.txt"]
    assert sorted(p.name for p in folder.parent.iterdir()) == ["42"]


async def test_publish_gs_uploads_with_the_token_and_emulator_host(tmp_path: Path) -> None:
    """gs:// uploads the folder under the final URI, with the token downloads use."""
    emulator = GcsEmulator(buckets=("bucket",), expected_token="ya29.pub")

    async def token() -> str:
        return "ya29.pub"

    folder = tree(tmp_path / "out", {"manifest.json": b"{}"})
    async with served(emulator.app()) as running:
        uri = await publish(
            folder,
            "gs://bucket/results",
            ["MX", "ig", "POP", "l", "42"],
            token=token,
            storage_emulator_host=running.url,
        )
    assert uri == "gs://bucket/results/MX/ig/POP/l/42"
    assert emulator.objects("bucket") == {"results/MX/ig/POP/l/42/manifest.json": b"{}"}


async def test_publish_rejects_other_schemes(tmp_path: Path) -> None:
    """Only file:// and gs:// are output locations."""
    with pytest.raises(ConfigError):
        await publish(tmp_path, "s3://bucket", ["a"])
    with pytest.raises(ConfigError):
        await publish(tmp_path, "file://host/share", ["a"])


@pytest.mark.parametrize(
    ("first", "second"),
    [
        ("ntd-4711/2", "ntd-4711_2"),
        ("x" * 64 + "a", "x" * 64 + "b"),
        ("\uff21\uff22\uff23", "ABC"),
        ("ABC", "ABC~" + "0" * 32),
    ],
)
def test_different_ids_never_share_an_output_place(first: str, second: str) -> None:
    """Lossy sanitising cannot map two ntd_transaction_ids to one folder (issue 14)."""
    parts = ["MX", "instagram", "POP", "summer"]
    assert output_location("gs://b/r", [*parts, first]) != output_location(
        "gs://b/r", [*parts, second]
    )


def test_a_plain_id_keeps_its_own_name() -> None:
    """An id that needs no sanitising is its folder's name, as operators expect."""
    assert output_location("gs://b/r", ["MX", "ig", "POP", "s", "ntd-4711"]).endswith("/ntd-4711")
