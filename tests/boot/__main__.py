"""``make boot-test``: build the guest images (cached), boot once per scenario, print one
line per scenario and a summary line; exit 1 on any failure.

    python -m tests.boot [--only NAME ...] [--suite bookworm|trixie]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import signal
import socket
import sys
import tempfile
import time
import traceback
from pathlib import Path
from typing import Any

from tests.boot import probes
from tests.boot import scenarios as s
from tests.boot.cache import guest_image
from tests.boot.guest import SERVICE_IP
from tests.boot.release import build_release, server_tls
from tests.boot.render import Renderer
from tests.boot.results import summary_line, write_section

# deadline = job_timeout + idle_timeout + deadman_margin = 991 s from boot: after the boot
# report even with three guests side by side (with the smallest margin, 302 s, the timer
# fired before it). The agent is frozen meanwhile, so the wait costs little CPU.
HUNG = {
    "job_timeout": "1s",
    "idle_timeout": "90s",
    "notify_deadline": "1s",
    "shutdown_grace": "1s",
    "deadman_margin": "900s",
}
SCENARIOS = [
    s.Scenario("1-happy-http+6-hardening", "bookworm", s.happy_http, runcmd=(probes.HARDENING,)),
    s.Scenario("5-bad-port", "bookworm", s.bad_port, attributes={"notraining-port": "99999"}),
    s.Scenario(
        "2-pull-poweroff",
        "bookworm",
        s.pull_poweroff,
        variables={"self_stop": "poweroff"},
        inbound=False,
    ),
    s.Scenario("3-preemption", "bookworm", s.preemption, slow_art=True, variables={"spot": True}),
    s.Scenario("4-hung-agent", "trixie", s.hung_agent, variables=HUNG, runcmd=(probes.FREEZE,)),
    # The crash restarts the agent on systemd 252 and 257 alike, and the clean exit after
    # the job powers off (self_stop poweroff: no Compute call).
    *(
        s.Scenario(
            f"{suite}-kill-once",
            suite,
            s.kill_once,
            slow_art=True,
            runcmd=(probes.KILL_ONCE,),
            variables={"self_stop": "poweroff"},
        )
        for suite in ("bookworm", "trixie")
    ),
    s.Scenario("trixie-crash-loop", "trixie", s.crash_loop, runcmd=(probes.CRASH_LOOP,)),
]


def free_port() -> int:
    """A loopback port free right now (for the receiver's hostfwd)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def accel() -> str:
    """tcg unless NOTRAINING_BOOT_ACCEL says kvm: KVM guests hang on this machine kind."""
    return os.environ.get("NOTRAINING_BOOT_ACCEL", "tcg")


async def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.boot")
    parser.add_argument("--only", nargs="*", default=None, help="scenario names (prefixes)")
    parser.add_argument("--suite", choices=["bookworm", "trixie"], default=None)
    parser.add_argument("--keep", action="store_true", help="keep the work folder")
    parser.add_argument(
        "--jobs", type=int, default=1, help="guests booted at once (each gets the cores / jobs)"
    )
    args = parser.parse_args(argv)
    chosen = [
        sc
        for sc in SCENARIOS
        if (args.suite is None or sc.suite == args.suite)
        and (not args.only or any(sc.name.startswith(o) for o in args.only))
    ]
    t0 = time.monotonic()
    work = Path(tempfile.mkdtemp(prefix="notraining-boot-"))
    outcomes: dict[str, s.Boot | None] = {}
    renderer = await asyncio.to_thread(Renderer)
    try:
        prepared = {}
        for suite in sorted({sc.suite for sc in chosen}, key=["bookworm", "trixie"].index):
            started = time.monotonic()
            image = await asyncio.to_thread(guest_image, suite)
            release = await asyncio.to_thread(build_release, suite)
            print(
                f"boot-test image {suite}: {'built' if image.built_now else 'cached'} "
                f"in {time.monotonic() - started:.0f}s ({image.folder.name})",
                flush=True,
            )
            (work / suite).mkdir()
            tls = server_tls(image.file("ca.pem"), image.file("ca.key"), work / suite, SERVICE_IP)
            prepared[suite] = (image, release, tls)
        slots = asyncio.Semaphore(max(1, args.jobs))
        cpus = max(1, (os.cpu_count() or 2) // max(1, args.jobs))

        async def one(sc: s.Scenario) -> None:
            async with slots:
                outcomes[sc.name] = await _boot(sc, prepared[sc.suite], renderer, work, cpus)

        async with asyncio.TaskGroup() as group:
            for sc in chosen:
                group.create_task(one(sc), name=f"boot {sc.name}")
    finally:
        renderer.close()
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)
    failures = sum(1 for boot in outcomes.values() if boot is None)
    total = time.monotonic() - t0
    happy = [b for sc in chosen if sc.body is s.happy_http and (b := outcomes.get(sc.name))]
    if happy:
        line = "boot-test summary: " + summary_line(happy[0].figures)
        write_section(happy[0].figures, accel(), "bookworm")
    else:
        line = "boot-test summary: no figures (scenario 1 did not pass or did not run)"
    print(
        f"{line}; {len(chosen) - failures}/{len(chosen)} scenarios passed in {total:.0f}s "
        f"({accel()}, {args.jobs} at once)",
        flush=True,
    )
    return 1 if failures or not chosen else 0


async def _boot(
    sc: s.Scenario, prepared: tuple[Any, Any, Any], renderer: Renderer, work: Path, cpus: int
) -> s.Boot | None:
    """One scenario's boot; prints its PASS/FAIL line; None when it failed."""
    image, release, tls = prepared
    began = time.monotonic()
    try:
        boot = await s.run_scenario(
            sc,
            image=image,
            release=release,
            renderer=renderer,
            tls=tls,
            workdir=work / sc.name,
            accel=accel(),
            free_port=free_port,
            cpus=cpus,
        )
    except Exception as exc:
        print(
            f"boot-test {sc.name}: FAIL ({time.monotonic() - began:.0f}s) "
            f"{type(exc).__name__}: {exc}",
            flush=True,
        )
        traceback.print_exc(file=sys.stderr)
        console = work / sc.name / "console.log"
        if console.exists():
            tail = console.read_text(encoding="utf-8").splitlines()[-40:]
            print("\n".join(f"    | {t}" for t in tail), file=sys.stderr)
        return None
    print(
        f"boot-test {sc.name}: PASS ({time.monotonic() - began:.0f}s) " + "; ".join(boot.notes),
        flush=True,
    )
    return boot


def _dump_tasks() -> None:
    """SIGUSR1: print where every task waits, to see what a stuck run is waiting on."""
    for running in asyncio.all_tasks():
        print(f"boot-test task {running.get_name()}:", file=sys.stderr)
        awaited: Any = running.get_coro()
        while awaited is not None and hasattr(awaited, "cr_frame"):
            frame = awaited.cr_frame
            if frame is not None:
                print(f"  {frame.f_code.co_filename}:{frame.f_lineno}", file=sys.stderr)
            awaited = awaited.cr_await
        print(f"  awaiting {awaited!r}", file=sys.stderr)
    sys.stderr.flush()


async def _main_cancellable(argv: list[str]) -> int:
    """main(), cancelled by SIGTERM/SIGINT so its cleanup (qemu, emulators) still runs."""
    task = asyncio.current_task()
    assert task is not None
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, task.cancel)
    loop.add_signal_handler(signal.SIGUSR1, _dump_tasks)
    try:
        return await main(argv)
    except asyncio.CancelledError:
        print("boot-test: interrupted; qemu and the emulators were stopped", flush=True)
        return 1


if __name__ == "__main__":
    sys.exit(asyncio.run(_main_cancellable(sys.argv[1:])))
