"""http.limits: caps that leave descriptors for the job, and one warning per interval."""

from __future__ import annotations

import logging

import pytest
from notraining_agent.http.limits import (
    BACKLOG,
    FD_RESERVE,
    MAX_CONNECTIONS,
    MAX_UNTRUSTED,
    Limits,
    Quiet,
    limits_for,
)


def test_caps_leave_descriptors_for_the_job() -> None:
    """Under 1 024 open files the caps keep FD_RESERVE plus a burst free; more files, full caps."""
    small = limits_for(1024)
    assert small.connections + BACKLOG + FD_RESERVE <= 1024
    assert small.untrusted < small.connections
    assert limits_for(8192) == Limits(MAX_CONNECTIONS, MAX_UNTRUSTED)
    assert limits_for(100).connections >= 8


def test_quiet_logs_one_warning_per_interval(caplog: pytest.LogCaptureFixture) -> None:
    """A thousand events in one interval are one line; the next interval's line counts them."""
    now = [0.0]
    quiet = Quiet(interval=60, clock=lambda: now[0])
    with caplog.at_level(logging.WARNING, logger="notraining_agent.http.limits"):
        for _ in range(1000):
            quiet.note("busy")
        now[0] = 61
        quiet.note("busy")
    assert [r.getMessage() for r in caplog.records] == [
        "busy (1 times since the last such line)",
        "busy (1000 times since the last such line)",
    ]
