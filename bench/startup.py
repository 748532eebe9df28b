"""How fast the agent reaches Saturno, and how light it is while it waits for a job.

Targets (issue 2): at most 0.5 s from process start to the boot report reaching
the Saturno emulator, and an idle RSS of at most 60 MiB. Runs the real agent
(``python -m agent run``) against the emulators, several times, and prints a
Markdown table for bench/RESULTS.md.

    .venv/bin/python bench/startup.py [--runs 7]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
import time
from pathlib import Path

from notraining_testkit.emulators.suite import AgentProcess, start_world

IDLE_SETTLE = 3.0  # seconds idle before RSS is read: start-up garbage is gone by then


def rss_mib(pid: int) -> float:
    """Resident set size of ``pid`` in MiB, from /proc."""
    for line in Path(f"/proc/{pid}/status").read_text(encoding="ascii").splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmRSS")


async def one_run(state_dir: Path) -> tuple[float, float]:
    """Seconds from spawn to the boot report's arrival, and idle RSS in MiB."""
    world = await start_world(attributes={"notraining-idle-timeout": "1h"})
    agent = AgentProcess(world.agent_env(state_dir))
    try:
        started = time.monotonic()
        await agent.start()
        await world.saturno.wait_for("register", timeout=30)
        to_boot_report = time.monotonic() - started
        await asyncio.sleep(IDLE_SETTLE)
        return to_boot_report, rss_mib(agent.pid)
    finally:
        await agent.close()
        await world.close()


async def main(runs: int) -> None:
    """Run ``runs`` times and print the table."""
    times: list[float] = []
    rss: list[float] = []
    with tempfile.TemporaryDirectory() as tmp:
        for n in range(runs):
            boot, mem = await one_run(Path(tmp) / f"run{n}" / "state")
            times.append(boot)
            rss.append(mem)
            print(f"run {n + 1}: boot report after {boot * 1000:.0f} ms, idle RSS {mem:.1f} MiB")
    print()
    print("| measure | median | max | target |")
    print("|---|---|---|---|")
    print(
        f"| process start → boot report at Saturno | {statistics.median(times) * 1000:.0f} ms "
        f"| {max(times) * 1000:.0f} ms | ≤ 500 ms |"
    )
    print(f"| idle RSS | {statistics.median(rss):.1f} MiB | {max(rss):.1f} MiB | ≤ 60 MiB |")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=7)
    asyncio.run(main(parser.parse_args().runs))
