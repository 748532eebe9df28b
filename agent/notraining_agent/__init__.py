"""notraining-agent: one GCE VM, one job, then the VM stops."""

from importlib.metadata import PackageNotFoundError, version


def agent_version() -> str:
    """The installed distribution's version (for ``--version`` and the boot report)."""
    try:
        return version("notraining-agent")
    except PackageNotFoundError:
        return "0+unknown"
