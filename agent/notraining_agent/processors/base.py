"""The processor interface: an async callable given the job's arts, returning a result.

The runner downloads and extracts the arts, then hands them over as a
:class:`ProcessorContext`. A processor writes whatever it produces under
``ctx.output_dir`` (published to ``output_uri`` afterwards) and returns a
:class:`ProcessorResult`. CPU-bound work must leave the event loop, in a way
that cancellation (``job_timeout``, SIGTERM) really stops.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Literal, Protocol

if TYPE_CHECKING:
    # Only a type here: the keypoints worker children import this module, and the job
    # package pulls in aiohttp (half a second of each child's start).
    from notraining_agent.job.spec import JobSpec


@dataclass(frozen=True)
class Art:
    """One art of the job: the union of the zip and ``arts_path``, keyed by file name."""

    name: str
    path: Path
    sources: tuple[str, ...]
    sha256: str
    size: int


DiscrepancyKind = Literal["only_in_zip", "only_in_arts_path", "different_bytes"]


@dataclass(frozen=True)
class Discrepancy:
    """A name found on one side only, or with different bytes on each side."""

    name: str
    kind: DiscrepancyKind
    detail: str


@dataclass(frozen=True)
class ProcessorContext:
    """Everything a processor may use; ``progress(done, total)`` feeds the logs."""

    job: JobSpec
    arts: tuple[Art, ...]
    discrepancies: tuple[Discrepancy, ...]
    work_dir: Path
    output_dir: Path
    progress: Callable[[int, int], None]


@dataclass(frozen=True)
class ProcessorResult:
    """What the end report learns: ``arts`` processed and warnings for the user."""

    arts: int
    warnings: tuple[str, ...] = ()
    extra: Mapping[str, object] = field(default_factory=dict)


class Processor(Protocol):
    """An async callable that processes one job's arts."""

    async def __call__(self, ctx: ProcessorContext) -> ProcessorResult: ...
