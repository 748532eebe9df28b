"""The cost guard (issue 4, item 3): how long a VM stays up after its job ended, per fault.

Runs many whole lifecycles of the real agent (``python -m notraining_agent run``) against
the emulators, each with one fault drawn at random (kind and parameters), under
a stand-in for systemd (``Restart=on-failure`` after ``RestartSec=10s``,
``RestartPreventExitStatus=2 3``, ``OnFailure=poweroff.target``). For each run it
measures from the job's end (the agent's ``job_finished`` log line) to the VM's
stop (the Compute emulator's stop, the fake ``systemctl poweroff``, or systemd
powering off after exit 3), and prints, per fault kind, the longest such time
against the target ``shutdown_grace`` + 60 s.

Time is scaled: ``shutdown_grace`` is 5 s (2 min in production) and
``notify_deadline`` 30 s (15 min); the Compute and Saturno per-call bounds are the
real ones.

    .venv/bin/python bench/cost_guard.py [--runs 52] [--parallel 4] [--seed 1]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import random
import signal
import tempfile
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from notraining_agent.cli.submit import submit
from notraining_testkit.emulators._server import serve
from notraining_testkit.emulators.suite import AgentProcess, World, start_world

GRACE = 5.0
NOTIFY_DEADLINE = 30.0
TARGET = GRACE + 60.0
RESTART_SEC = 10.0  # cloud-init/notraining-agent.service
NO_RESTART = {0, 2, 3}  # success, and RestartPreventExitStatus=2 3
LIFE_LIMIT = 300.0  # a run still up after this is reported as not ended by the agent
SETTINGS = {
    "shutdown_grace": f"{GRACE:g}s",
    "notify_deadline": f"{NOTIFY_DEADLINE:g}s",
    "idle_timeout": "120s",
    "job_timeout": "120s",
    "self_stop": "stop",
}
RESULTS = Path(__file__).with_name("RESULTS_cost_guard.md")


@dataclass
class Run:
    """One lifecycle: its fault, and what was measured."""

    kind: str
    detail: str
    job_end: float | None = None
    stopped: float | None = None
    stopped_by: str = "not stopped"
    exits: tuple[int, ...] = ()
    preempted_at: float | None = None  # when instance/preempted turned TRUE
    to_report: float | None = None  # from then to Saturno receiving the end report

    @property
    def after_job(self) -> float | None:
        if self.job_end is None or self.stopped is None:
            return None
        return self.stopped - self.job_end


class Vm:
    """A world, the agent under a stand-in for systemd, and the clocks of its end."""

    def __init__(self, world: World, state_dir: Path, run: Run) -> None:
        self.world, self.state_dir, self.run = world, state_dir, run
        self.agents: list[AgentProcess] = []
        world.compute.on_stop = lambda _name: self._stopped("compute stop")

    def _stopped(self, how: str, when: float | None = None) -> None:
        """Note the first way the VM went down (later ones change nothing)."""
        if self.run.stopped is None:
            self.run.stopped, self.run.stopped_by = when or time.time(), how

    def _on_line(self, line: dict[str, object]) -> None:
        if line.get("event") == "job_finished" and self.run.job_end is None:
            self.run.job_end = _parse_time(str(line["time"]))

    async def start(self) -> AgentProcess:
        agent = AgentProcess(self.world.agent_env(self.state_dir, **SETTINGS))
        agent.on_line = self._on_line
        self.agents.append(agent)
        await agent.start()
        return agent

    async def supervise(self) -> None:
        """Restart=on-failure until the agent ends for good, then note how the VM went down."""
        while True:
            code = await self.agents[-1].wait(LIFE_LIMIT)
            self.run.exits += (code,)
            calls = self.state_dir.parent / "fake-bin" / "systemctl.calls"
            if calls.exists():
                self._stopped("poweroff fallback", calls.stat().st_mtime)
            if code == 3:
                self._stopped("systemd OnFailure=poweroff.target (exit 3)")
            if code in NO_RESTART or self.run.stopped is not None:
                return
            await asyncio.sleep(RESTART_SEC)
            await self.start()

    async def post_job(self, agent: AgentProcess) -> None:
        line = await agent.wait_for_log(lambda x: x.get("event") == "listening", 30)
        payload = self.world.art.job_payload("ntd-cost", base_url=self.world.url("art"))
        token = self.world.saturno_token()
        answer = await submit(f"http://127.0.0.1:{line['port']}", payload, authorization=token)
        assert answer.status == 200, answer.body  # noqa: S101 - a bench precondition

    def preemption_budget_used(self) -> float | None:
        """Seconds from preempted=TRUE to Saturno receiving the end report."""
        ends = self.world.saturno.reports_for("done")
        if self.run.preempted_at is None or not ends:
            return None
        return ends[0].received_at - self.run.preempted_at

    async def close(self) -> None:
        for agent in self.agents:
            await agent.close()
        self.world.metadata.drop_watches()
        await self.world.close()


def _parse_time(text: str) -> float:
    return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


async def _until_state(agent: AgentProcess, state: str) -> None:
    await agent.wait_for_log(lambda x: x.get("state") == state, 120)


# -- the faults: each sets up the world, starts the VM and injects its fault -----------------

Fault = Callable[[Vm, random.Random], Awaitable[str]]


async def none(vm: Vm, _rng: random.Random) -> str:
    await vm.post_job(await vm.start())
    return "no fault"


async def _saturno_gone_at_job_start(vm: Vm) -> int:
    """Boot the VM, take Saturno down once idle, post the job; Saturno's port, to come back on."""
    agent = await vm.start()
    await _until_state(agent, "idle")
    server = vm.world.servers.pop("saturno")
    await server.close()
    await vm.post_job(agent)
    return server.port


async def saturno_down(vm: Vm, rng: random.Random) -> str:
    outage = rng.uniform(3, 20)  # under notify_deadline; past it, it is "down for good"
    port = await _saturno_gone_at_job_start(vm)
    await asyncio.sleep(outage)
    vm.world.servers["saturno"] = await serve(vm.world.saturno.app(), port=port)
    return f"down {outage:.0f} s from job start"


async def saturno_down_for_good(vm: Vm, _rng: random.Random) -> str:
    await _saturno_gone_at_job_start(vm)
    return "down from job start, never back"


async def saturno_slow(vm: Vm, _rng: random.Random) -> str:
    vm.world.saturno.delay("done", 30.0, times=1)  # slow for good is "down for good"
    await vm.post_job(await vm.start())
    return "first end-report answer after 30 s"


async def saturno_503(vm: Vm, rng: random.Random) -> str:
    times = rng.randint(1, 5)
    vm.world.saturno.fail("done", 503, times=times)
    await vm.post_job(await vm.start())
    return f"{times}x 503 then 200"


async def saturno_400(vm: Vm, _rng: random.Random) -> str:
    vm.world.saturno.fail("done", 400)
    await vm.post_job(await vm.start())
    return "400 on the end report"


async def metadata_down_at_end(vm: Vm, _rng: random.Random) -> str:
    agent = await vm.start()
    await vm.post_job(agent)
    await _until_state(agent, "reporting")
    vm.world.metadata.set_down(True)
    return "503 from the end report on (no token for the stop)"


async def metadata_down_at_boot(vm: Vm, rng: random.Random) -> str:
    outage = rng.uniform(2, 20)
    vm.world.metadata.set_down(True)
    agent = await vm.start()
    await asyncio.sleep(outage)
    vm.world.metadata.set_down(False)
    await vm.post_job(agent)
    return f"503 for the first {outage:.0f} s of boot"


def compute_fault(status: int | None) -> Fault:
    """The stop request answered ``status`` every time, or never answered (None)."""

    async def fault(vm: Vm, _rng: random.Random) -> str:
        if status is None:
            vm.world.compute.hang(operation="stop")
        else:
            vm.world.compute.fail(status, operation="stop", times=None)
        await vm.post_job(await vm.start())
        return f"every stop request: {status or 'no answer'}"

    return fault


async def agent_killed(vm: Vm, rng: random.Random) -> str:
    stage = rng.choice(["busy", "reporting", "grace", "stopping"])
    if stage == "reporting":
        vm.world.saturno.delay("done", 10.0, times=1)
    if stage == "stopping":
        vm.world.compute.hang(operation="stop", times=1)
    agent = await vm.start()
    if stage == "busy":
        vm.world.art.throttle(20_000, paths=["/package.zip"])
    await vm.post_job(agent)
    await _until_state(agent, stage)
    await asyncio.sleep(rng.uniform(0, 1))
    vm.world.art.throttle(None)
    agent.send(signal.SIGKILL)
    return f"kill -9 in {stage}; systemd restarts it after {RESTART_SEC:g} s"


async def preempted(vm: Vm, rng: random.Random) -> str:
    vm.world.art.throttle(5_000, paths=["/package.zip"])
    agent = await vm.start()
    await vm.post_job(agent)
    await agent.wait_for_log(lambda x: x.get("stage") == "download", 30)
    await asyncio.sleep(rng.uniform(0, 2))
    vm.run.preempted_at = time.time()
    vm.world.metadata.set_preempted(True)
    return "instance/preempted turns TRUE mid-download"


FAULTS: dict[str, Fault] = {
    "none": none,
    "saturno down (outage)": saturno_down,
    "saturno down for good": saturno_down_for_good,
    "saturno slow (30 s)": saturno_slow,
    "saturno 503 then 200": saturno_503,
    "saturno 400": saturno_400,
    "metadata down at boot": metadata_down_at_boot,
    "metadata down at the end": metadata_down_at_end,
    "compute 403": compute_fault(403),
    "compute 500": compute_fault(500),
    "compute never answers": compute_fault(None),
    "agent kill -9": agent_killed,
    "preempted mid-job": preempted,
}
SCALES_WITH_DEADLINE = {"saturno down for good"}


async def one_run(kind: str, rng: random.Random, folder: Path) -> Run:
    run = Run(kind, "")
    vm = Vm(await start_world(), folder / "state", run)
    try:
        run.detail = await FAULTS[kind](vm, rng)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(vm.supervise(), LIFE_LIMIT)
        run.to_report = vm.preemption_budget_used()
    finally:
        await vm.close()
    return run


async def main(runs: int, parallel: int, seed: int) -> None:
    rng = random.Random(seed)  # noqa: S311 - fault draws, seeded to be replayable
    kinds = list(FAULTS) + [rng.choice(list(FAULTS)) for _ in range(max(0, runs - len(FAULTS)))]
    rng.shuffle(kinds)
    gate = asyncio.Semaphore(parallel)
    started = time.monotonic()
    with tempfile.TemporaryDirectory() as tmp:

        async def guarded(n: int, kind: str) -> Run:
            async with gate:
                own = random.Random(rng.random())  # noqa: S311 - same
                run = await one_run(kind, own, Path(tmp) / f"run{n}")
            shown = f"{run.after_job:.1f} s" if run.after_job is not None else "-"
            print(
                f"run {n + 1:>2}: {kind:<26} {run.detail:<48} after job: {shown:>8} "
                f"({run.stopped_by}; exits {run.exits})",
                flush=True,
            )
            return run

        done = await asyncio.gather(*(guarded(n, kind) for n, kind in enumerate(kinds)))
    table = render(done, seed, time.monotonic() - started)
    print()
    print(table)
    RESULTS.write_text(table, encoding="utf-8")


def render(runs: list[Run], seed: int, seconds: float) -> str:
    lines = [
        f"## Cost guard (`bench/cost_guard.py --runs {len(runs)} --seed {seed}`)",
        "",
        f"Whole lifecycles of the real agent against the emulators, one random fault each, "
        f"under a stand-in for systemd (Restart=on-failure, RestartSec={RESTART_SEC:g}s). "
        f"Scaled time: shutdown_grace {GRACE:g} s, notify_deadline {NOTIFY_DEADLINE:g} s; "
        f"per-call bounds are the real ones. Time after the job ended = from the agent's "
        f"`job_finished` log line to the VM's stop. Target: shutdown_grace + 60 s = "
        f"{TARGET:g} s. {len(runs)} runs in {seconds:.0f} s.",
        "",
        "| fault kind | runs | longest after job end | median | how the VM stopped | target |",
        "|---|---|---|---|---|---|",
    ]
    for kind in FAULTS:
        mine = [r for r in runs if r.kind == kind]
        times = sorted(t for r in mine if (t := r.after_job) is not None)
        if not mine:
            continue
        longest = f"{times[-1]:.1f} s" if times else "never stopped"
        median = f"{times[len(times) // 2]:.1f} s" if times else "-"
        how = ", ".join(sorted({r.stopped_by for r in mine}))
        if kind in SCALES_WITH_DEADLINE:
            verdict = "= notify_deadline + grace + stop (see note)"
        elif len(times) == len(mine) and times[-1] <= TARGET:
            verdict = "met"
        else:
            verdict = "**missed**"
        lines.append(f"| {kind} | {len(mine)} | {longest} | {median} | {how} | {verdict} |")
    budget = [r.to_report for r in runs if r.to_report is not None]
    if budget:
        lines += [
            "",
            f"Preemption: from `instance/preempted` = TRUE to the end report at Saturno, "
            f"longest {max(budget) * 1000:.0f} ms over {len(budget)} runs (GCE's budget: 30 s).",
        ]
    lines += [
        "",
        "Saturno rows are bounded by `notify_deadline`, as contract section 6 says (deliver "
        "the end report, or let notify_deadline pass, then grace, then the stop): an outage "
        "of D s costs D plus at most one backoff delay (full jitter, capped at 60 s); a "
        "Saturno that stays down, or never answers within a try's 30 s, costs "
        "notify_deadline + grace + the stop. Scaled here to 30 s; with the default 15 min that "
        "is about 17 min, above the target. An agent killed for good (no restart) is left to "
        "the systemd dead-man's switch and GCE's max_run_duration (infra issue).",
        "",
    ]
    return "\n".join(lines)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=52)
    parser.add_argument("--parallel", type=int, default=4)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    asyncio.run(main(args.runs, args.parallel, args.seed))
