"""Scenario 1's figures: one summary line, and a section of bench/RESULTS.md."""

from __future__ import annotations

import platform
import time

from tests.boot.cache import REPO

RESULTS = REPO / "bench" / "RESULTS.md"
HEADING = "## Real boot (`make boot-test`, scenario 1)"


def summary_line(figures: dict[str, float]) -> str:
    """The figures in one line."""
    return (
        f"kernel->multi-user {figures['multi_user_s']:.1f}s, ->READY {figures['ready_s']:.1f}s, "
        f"->boot report {figures['boot_report_s']:.1f}s, install {figures['install_s']:.1f}s, "
        f"agent RSS {figures.get('rss_mb', float('nan')):.1f} MiB, "
        f"agent share {figures['share']:.2f}"
    )


def write_section(figures: dict[str, float], accel: str, suite: str) -> None:
    """Replace (or add) the boot test's section of bench/RESULTS.md."""
    section = f"""{HEADING}

One Debian {suite} guest under qemu ({accel}, 2 vCPUs, 2 GiB) on the project's machine
kind, booting the user-data Terraform renders; every time is read from outside the guest
(host timestamps of serial-console lines, of the file server's requests and of Saturno's
boot report). Emulation inflates absolute times; the agent's share,
(boot report - multi-user.target) / (multi-user.target - kernel start), is the figure that
carries over to a real VM. Recorded {time.strftime("%Y-%m-%d")} on {platform.machine()}.

| measure | value |
|---|---|
| kernel start → multi-user.target | {figures["multi_user_s"]:.1f} s |
| kernel start → agent READY (sd_notify; systemd's "Started" line) | {figures["ready_s"]:.1f} s |
| kernel start → boot report at Saturno | {figures["boot_report_s"]:.1f} s |
| install step (first download → the unit's start) | {figures["install_s"]:.1f} s |
| agent RSS in the guest at READY | {figures.get("rss_mb", float("nan")):.1f} MiB |
| agent's share | {figures["share"]:.2f} |
"""
    text = RESULTS.read_text(encoding="utf-8") if RESULTS.exists() else "# Benchmark results\n"
    if HEADING in text:
        head, rest = text.split(HEADING, 1)
        tail = rest.split("\n## ", 1)
        text = head + section + ("\n## " + tail[1] if len(tail) > 1 else "")
    else:
        text = text.rstrip("\n") + "\n\n" + section
    RESULTS.write_text(text, encoding="utf-8")
