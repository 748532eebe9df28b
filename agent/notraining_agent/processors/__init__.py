"""Processors by name: the built-ins, then the ``notraining_agent.processors`` entry points."""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, cast

from notraining_agent.errors import ConfigError
from notraining_agent.processors.base import Processor

if TYPE_CHECKING:
    from importlib.metadata import EntryPoints

ENTRY_POINT_GROUP = "notraining_agent.processors"
BUILTINS: dict[str, str] = {
    "manifest": "notraining_agent.processors.manifest:process",
    "keypoints": "notraining_agent.processors.keypoints:process",
}


def available() -> list[str]:
    """Every processor name that ``processor`` may select."""
    names = set(BUILTINS) | {ep.name for ep in _plugins()}
    return sorted(names)


def load_processor(name: str) -> Processor:
    """The processor called ``name``; ConfigError when it is unknown or cannot be imported."""
    target = BUILTINS.get(name)
    if target is None:
        found = [ep for ep in _plugins() if ep.name == name]
        if not found:
            raise ConfigError(
                f"config: processor={name!r} is unknown; choose one of {', '.join(available())}"
            )
        target = found[0].value
    module_name, _, attr = target.partition(":")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise ConfigError(
            f"config: processor={name!r} cannot be loaded ({exc}); install its extra, "
            "e.g. pip install 'notraining-agent[vision]' for keypoints"
        ) from exc
    return cast(Processor, getattr(module, attr))


def _plugins() -> EntryPoints:
    """The installed plugins; importlib.metadata only then: a built-in needs none (issue 12)."""
    from importlib.metadata import entry_points  # noqa: PLC0415

    return entry_points(group=ENTRY_POINT_GROUP)
