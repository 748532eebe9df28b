"""Scenario 1's figures: one summary line, and a section of bench/RESULTS.md."""

from __future__ import annotations

import platform
import time
from pathlib import Path

from tests.boot.cache import REPO

RESULTS = REPO / "bench" / "RESULTS.md"
HEADING = "## Real boot (`make boot-test`, scenario 1)"
BEGIN, END = "<!-- boot:latest -->", "<!-- /boot:latest -->"


def summary_line(figures: dict[str, float]) -> str:
    """The figures in one line."""
    return (
        f"kernel->multi-user {figures['multi_user_s']:.1f}s, ->READY {figures['ready_s']:.1f}s, "
        f"->boot report {figures['boot_report_s']:.1f}s, install {figures['install_s']:.1f}s, "
        f"agent RSS {figures.get('rss_mb', float('nan')):.1f} MiB, "
        f"agent share {figures['share']:.2f}"
    )


def write_section(figures: dict[str, float], accel: str, suite: str) -> None:
    """Replace the latest run's figures in bench/RESULTS.md (between its markers); the
    hand-written text around them, earlier runs included, stays."""
    load = " ".join(Path("/proc/loadavg").read_text(encoding="ascii").split()[:3])
    latest = f"""{BEGIN}
One Debian {suite} guest under qemu ({accel}, 2 vCPUs, 2 GiB), recorded
{time.strftime("%Y-%m-%d %H:%M")} on {platform.machine()}, host load {load} at the end.

| measure | value |
|---|---|
| kernel start → multi-user.target | {figures["multi_user_s"]:.1f} s |
| kernel start → agent READY (sd_notify; systemd's "Started" line) | {figures["ready_s"]:.1f} s |
| kernel start → boot report at Saturno | {figures["boot_report_s"]:.1f} s |
| install step (first download → the unit's start) | {figures["install_s"]:.1f} s |
| agent RSS in the guest at READY | {figures.get("rss_mb", float("nan")):.1f} MiB |
| agent's share | {figures["share"]:.2f} |
{END}"""
    text = RESULTS.read_text(encoding="utf-8") if RESULTS.exists() else "# Benchmark results\n"
    if BEGIN in text and END in text:
        head, rest = text.split(BEGIN, 1)
        text = head + latest + rest.split(END, 1)[1]
    else:
        text = text.rstrip("\n") + f"\n\n{HEADING}\n\n{latest}\n"
    RESULTS.write_text(text, encoding="utf-8")
