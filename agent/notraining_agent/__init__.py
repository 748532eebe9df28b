"""notraining-agent: one GCE VM, one job, then the VM stops."""

from __future__ import annotations

import functools
import sys
from pathlib import Path

_DIST_PREFIX = "notraining_agent-"
_DIST_SUFFIX = ".dist-info"


@functools.cache
def agent_version() -> str:
    """The installed distribution's version (for ``--version`` and the boot report).

    Read from the ``notraining_agent-<version>.dist-info`` folder's METADATA on
    ``sys.path``: importing ``importlib.metadata`` (email, zipfile, csv...) cost the
    daemon ~50 ms of CPU before its boot report (issue 12); it stays the fallback.
    """
    for entry in sys.path:
        try:
            names = [child.name for child in Path(entry or ".").iterdir()]
        except OSError:
            continue
        for name in names:
            if name.startswith(_DIST_PREFIX) and name.endswith(_DIST_SUFFIX):
                found = _metadata_version(Path(entry or ".", name, "METADATA"))
                if found:
                    return found
    return _version_from_importlib()


def _metadata_version(path: Path) -> str | None:
    """The ``Version:`` header of a METADATA file (it comes before the body)."""
    try:
        with path.open(encoding="utf-8") as handle:
            for line in handle:
                if line.startswith("Version:"):
                    return line.partition(":")[2].strip() or None
                if not line.strip():
                    return None  # the headers ended without a version
    except OSError:
        return None
    return None


def _version_from_importlib() -> str:
    from importlib.metadata import PackageNotFoundError, version  # noqa: PLC0415 - fallback

    try:
        return version("notraining-agent")
    except PackageNotFoundError:
        return "0+unknown"
