"""The agent's version, read without importing importlib.metadata (issue 12)."""

from __future__ import annotations

import subprocess
import sys
from importlib.metadata import version
from pathlib import Path

import notraining_agent
from notraining_agent import _metadata_version, agent_version


def test_agent_version_matches_importlib_metadata() -> None:
    """The dist-info lookup finds what importlib.metadata finds."""
    agent_version.cache_clear()
    assert agent_version() == version("notraining-agent")


def test_metadata_version_reads_the_header_only(tmp_path: Path) -> None:
    """``Version:`` comes from the headers; a body line of that shape does not count."""
    good = tmp_path / "good"
    good.write_text("Metadata-Version: 2.4\nName: notraining-agent\nVersion: 1.2.3\n\nbody\n")
    assert _metadata_version(good) == "1.2.3"
    body_only = tmp_path / "body"
    body_only.write_text("Metadata-Version: 2.4\nName: x\n\nVersion: 9.9.9\n")
    assert _metadata_version(body_only) is None
    assert _metadata_version(tmp_path / "missing") is None


def test_version_option_prints_to_stdout_without_loading_importlib_metadata() -> None:
    """``--version`` prints the version; the daemon's imports never load importlib.metadata.

    Its import (email, zipfile, csv...) was on the start-up path twice: the CLI parser
    asked for the version, and the processors module for plugin entry points, which a
    built-in processor does not need.
    """
    code = (
        "import sys; from notraining_agent.cli.main import build_parser; build_parser(); "
        "from notraining_agent.life import daemon; "
        "from notraining_agent.processors import load_processor; load_processor('manifest'); "
        "print('importlib.metadata' in sys.modules)"
    )
    loaded = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )
    assert loaded.stdout.strip() == "False"
    shown = subprocess.run(
        [sys.executable, "-m", "notraining_agent", "--version"],
        capture_output=True,
        text=True,
        check=True,
    )
    assert shown.stdout.strip() == f"notraining-agent {notraining_agent.agent_version()}"
