"""The job Saturno posts, as a validated value (contract section 4)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class JobSpec:
    """A job's fields after validation; ids are kept as strings."""

    ntd_transaction_id: str
    no_transaction_id: str | None
    country: str
    channel: str
    label: str
    category: str
    zip_art: str | None
    arts_path: tuple[str, ...]
