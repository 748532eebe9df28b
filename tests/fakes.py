"""Stand-ins many unit tests build the same way: a clock that jumps, a VM, a job."""

from __future__ import annotations

import asyncio
from typing import Any

from notraining_agent.gce import InstanceInfo
from notraining_agent.job.spec import JobSpec
from notraining_agent.util.retry import Clock

T0 = 1_700_000_000.0  # 2023-11-14T22:13:20Z


class FakeClock(Clock):
    """Wall time that moves only when someone sleeps, and then at once."""

    def __init__(self, start: float = T0) -> None:
        self.now = start
        self.sleeps: list[float] = []

    def monotonic(self) -> float:
        return self.now

    def wall(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += max(0.0, seconds)
        await asyncio.sleep(0)


def instance(**overrides: Any) -> InstanceInfo:
    """The VM the metadata emulator describes by default; ``overrides`` win."""
    values: dict[str, Any] = {
        "name": "vm-1",
        "project": "proj-1",
        "zone": "us-east1-b",
        "instance_id": "4518373217654321234",
        "internal_ip": "10.142.0.2",
        "external_ip": "203.0.113.10",
        "on_gce": True,
    }
    values.update(overrides)
    return InstanceInfo(**values)


def job_spec(ntd: str = "ntd-1", **overrides: Any) -> JobSpec:
    """A valid job with no arts_path; ``overrides`` win."""
    values: dict[str, Any] = {
        "ntd_transaction_id": ntd,
        "no_transaction_id": "no-1",
        "country": "AR",
        "channel": "web",
        "label": "summer",
        "category": "POP",
        "zip_art": "https://art.test/pack.zip",
        "arts_path": (),
    }
    values.update(overrides)
    return JobSpec(**values)
