"""How long the receiver takes to refuse each hostile body of the security suite.

``tests/security/test_body_attacks.py`` proves that every hostile body gets its 4xx naming
the bound it met (nesting, field count, size...); how long that takes depends on the
machine, so it is measured here and not asserted there. Runs the real agent (jwt mode,
the contract's default ``max_body_bytes``) as the suite does, posts each of the suite's
attacks ``--runs`` times (a new connection each), and prints a Markdown table of the
median and longest time from sending the body to reading the answer, against the target
of 2 s: parsing 1 MiB must never hold the receiver.

    .venv/bin/python bench/body_attacks.py [--runs 5]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import aiohttp
from notraining_testkit.emulators.suite import AgentProcess, start_world

# The attacks are the suite's own, so the bench times exactly what the tests prove.
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from tests.security.harness import boot_agent
from tests.security.test_body_attacks import ATTACKS, RECEIVER

TARGET = 2.0
"""Seconds a refusal may take on this machine."""


async def refuse(url: str, token: str, body: bytes, content_type: str) -> tuple[int, float]:
    """POST ``body``; the status and the seconds from sending to the whole answer."""
    headers = {"Authorization": token, "Content-Type": content_type}
    started = time.monotonic()
    async with (
        aiohttp.ClientSession() as session,
        session.post(url + RECEIVER, data=body, headers=headers) as answer,
    ):
        await answer.read()
        return answer.status, time.monotonic() - started


async def measure(runs: int) -> list[tuple[str, int, float, float]]:
    """Per attack: its name, body size, median and longest seconds to its refusal."""
    world = await start_world(attributes={"notraining-self-stop": "none"}, shutdown_grace="0s")
    process: AgentProcess | None = None
    rows = []
    try:
        with tempfile.TemporaryDirectory(prefix="bench-body-attacks-") as tmp:
            process, url = await boot_agent(world, Path(tmp))
            for name, (body, content_type, status, _) in ATTACKS.items():
                times = []
                for _ in range(runs):
                    got, seconds = await refuse(url, world.saturno_token(), body, content_type)
                    if got != status:
                        raise SystemExit(f"{name}: answered {got}, the suite expects {status}")
                    times.append(seconds)
                rows.append((name, len(body), statistics.median(times), max(times)))
    finally:
        if process is not None:
            await process.close()
        await world.close()
    return rows


def table(rows: list[tuple[str, int, float, float]], runs: int) -> str:
    """The Markdown table, with the host's load average and the verdict."""
    lines = [
        f"Hostile bodies refused by the real agent, {runs} runs each "
        f"(load average {os.getloadavg()[0]:.2f}, target {TARGET:.0f} s):",
        "",
        "| attack | body | median | longest | target |",
        "|---|---:|---:|---:|---|",
    ]
    for name, size, median, longest in rows:
        verdict = "met" if longest <= TARGET else "**missed**"
        lines.append(
            f"| {name} | {size / 1024:.1f} KiB | {median * 1000:.0f} ms "
            f"| {longest * 1000:.0f} ms | {verdict} |"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    print(table(asyncio.run(measure(args.runs)), args.runs))


if __name__ == "__main__":
    main()
