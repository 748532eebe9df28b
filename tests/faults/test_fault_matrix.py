"""The fault matrix (issue 4, item 1): every fault we can inject, at the stage where it hurts.

Each cell runs the real agent process against the emulators, injects one fault
while the agent is held in one stage, lets the world recover (a restart on the
same state_dir where the fault killed the process), and then checks what must
hold whatever happened: Saturno saw one end report (one Idempotency-Key, retries
included) with the expected status, the job started no more often than expected
(never more than 3 times), every process ended with the right exit code, and the
VM was asked to stop once, at the end.

Time is scaled down where the contract's is long: ``notify_deadline`` is seconds,
not 15 minutes, so a Saturno that answers after 30 s outlives the deadline; the
metadata server is down for 5 s at boot, not 20.
"""

from __future__ import annotations

import asyncio
import signal
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import pytest
from notraining_testkit.emulators.saturno import ReportKind
from notraining_testkit.emulators.suite import AgentProcess

from tests.faults.conftest import STEP_TIMEOUT, Scene
from tests.polling import wait_until

pytestmark = [pytest.mark.integration, pytest.mark.slow]

LIFE_TIMEOUT = 60.0
HOLD = 60.0  # seconds a held stage would last if nothing happened to it
ZIP = "/package.zip"
SLOW_ZIP_RATE = 5_000  # bytes/s: the 155 kB zip takes half a minute


@dataclass(frozen=True)
class Cell:
    """One fault at one stage, and what must hold after it."""

    fault: str
    stage: str
    status: str | None = "done"  # the end report's status; None: Saturno never gets one
    starts: int = 1  # job starts over every process
    exits: tuple[int, ...] = (0,)  # each process's exit code, in order
    stops: str = "poweroff"  # how the VM was stopped: poweroff, compute

    @property
    def id(self) -> str:
        return f"{self.fault}@{self.stage}"


KILLED, RESTARTED = -signal.SIGKILL, 0
MATRIX = [
    # kill -9 mid-stage, then the unit restarts the agent on the same state_dir
    Cell("kill-9", "registering", exits=(KILLED, RESTARTED)),
    Cell("kill-9", "waiting", exits=(KILLED, RESTARTED)),
    Cell("kill-9", "downloading", starts=2, exits=(KILLED, RESTARTED)),
    Cell("kill-9", "processing", starts=2, exits=(KILLED, RESTARTED)),
    Cell("kill-9", "reporting", exits=(KILLED, RESTARTED)),
    Cell("kill-9", "grace", exits=(KILLED, RESTARTED)),
    Cell("kill-9", "stopping", exits=(KILLED, RESTARTED), stops="compute"),
    # three starts killed: the fourth start reports failed instead of running it again
    Cell("kill-9-thrice", "processing", "failed", starts=3, exits=(KILLED,) * 3 + (RESTARTED,)),
    # SIGTERM (a stop by Saturno or GCE): exit 0; the VM later starts again
    Cell("sigterm", "registering", exits=(0, 0)),
    Cell("sigterm", "waiting", exits=(0, 0)),
    Cell("sigterm", "downloading", starts=2, exits=(0, 0)),
    Cell("sigterm", "processing", starts=2, exits=(0, 0)),
    Cell("sigterm", "reporting", exits=(0, 0)),
    Cell("sigterm", "grace", exits=(0, 0)),
    Cell("sigterm", "stopping", exits=(0, 0), stops="compute"),
    # Saturno misbehaving, on the boot report and on the end report
    Cell("saturno-down", "registering"),
    Cell("saturno-down", "reporting"),
    Cell("saturno-down-for-good", "reporting", status=None),
    Cell("saturno-slow", "registering"),
    Cell("saturno-slow", "reporting"),
    Cell("saturno-503-then-200", "registering"),
    Cell("saturno-503-then-200", "reporting"),
    Cell("saturno-400", "registering"),
    Cell("saturno-400", "reporting"),
    # the metadata server
    Cell("metadata-down", "booting"),
    Cell("preempted-watch-dropped", "downloading", status="preempted"),
    Cell("preempted-watch-dropped", "processing", status="preempted"),
    # the Compute API at the very end: the poweroff fallback takes over
    Cell("compute-403", "stopping"),
    Cell("compute-500", "stopping"),
    Cell("compute-hang", "stopping"),
]


# -- holding a stage -------------------------------------------------------------------------


@dataclass(frozen=True)
class Hold:
    """How to bring a new agent into ``stage``, and whether the job is still to be posted."""

    enter: Callable[[Scene], Awaitable[AgentProcess]]
    job_after: bool = False  # the job was not posted yet: post it to the restarted agent
    settings: tuple[tuple[str, str], ...] = ()  # what the restarted agent needs


async def _registering(scene: Scene) -> AgentProcess:
    scene.world.saturno.delay("register", HOLD)
    agent = await scene.start()
    await scene.world.saturno.wait_for("register", timeout=STEP_TIMEOUT)
    await scene.reach(agent, event="state", state="registering")
    return agent


async def _waiting(scene: Scene) -> AgentProcess:
    agent = await scene.start()
    await scene.reach(agent, event="state", state="idle")
    return agent


async def _downloading(scene: Scene) -> AgentProcess:
    scene.world.art.throttle(SLOW_ZIP_RATE, paths=[ZIP])
    agent = await scene.start()
    assert await scene.post_job(agent) == 200
    await scene.reach(agent, event="stage", stage="download")
    await wait_until(lambda: bool(scene.world.art.requests_for(ZIP)), STEP_TIMEOUT, 0.05)
    return agent


async def _processing(scene: Scene) -> AgentProcess:
    agent = await scene.start(processor="slow-manifest", process_seconds=HOLD)
    assert await scene.post_job(agent) == 200
    await scene.reach(agent, event="stage", stage="process")
    return agent


async def _reporting(scene: Scene) -> AgentProcess:
    scene.world.saturno.delay("done", HOLD)
    agent = await scene.start()
    assert await scene.post_job(agent) == 200
    await scene.world.saturno.wait_for("done", timeout=LIFE_TIMEOUT)
    await scene.reach(agent, event="state", state="reporting")
    return agent


async def _grace(scene: Scene) -> AgentProcess:
    agent = await scene.start(shutdown_grace=f"{HOLD:.0f}s")
    assert await scene.post_job(agent) == 200
    await scene.reach(agent, event="state", state="grace")
    return agent


async def _stopping(scene: Scene) -> AgentProcess:
    scene.world.compute.hang(operation="stop")
    agent = await scene.start(self_stop="stop")
    assert await scene.post_job(agent) == 200
    await wait_until(lambda: bool(scene.world.compute.calls_for("stop")), LIFE_TIMEOUT, 0.05)
    return agent


HOLDS = {
    "registering": Hold(_registering, job_after=True),
    "waiting": Hold(_waiting, job_after=True),
    "downloading": Hold(_downloading),
    "processing": Hold(_processing, settings=(("processor", "slow-manifest"),)),
    "reporting": Hold(_reporting),
    "grace": Hold(_grace),
    "stopping": Hold(_stopping, settings=(("self_stop", "stop"),)),
}


def _release(scene: Scene) -> None:
    """Every hold lifted: the next process meets a healthy world."""
    scene.world.saturno.clear_faults()
    scene.world.art.throttle(None)
    scene.world.compute.clear_faults()


# -- the faults ------------------------------------------------------------------------------


async def interrupted(scene: Scene, cell: Cell) -> None:
    """Kill -9 or SIGTERM the agent in the held stage; a new process finishes the life."""
    hold = HOLDS[cell.stage]
    first = await hold.enter(scene)
    first.send(signal.SIGTERM if cell.fault == "sigterm" else signal.SIGKILL)
    await first.wait(STEP_TIMEOUT)
    _release(scene)
    second = await scene.start(**dict(hold.settings))
    if hold.job_after:
        assert await scene.post_job(second) == 200
    await second.wait(LIFE_TIMEOUT)
    done_tries = len(scene.world.saturno.reports_for("done"))
    if cell.stage == "reporting":
        assert done_tries >= 2, "the pending end report was not sent again after the restart"
    elif cell.stage in ("grace", "stopping"):
        assert done_tries == 1, "a delivered end report was sent again after the restart"
    if cell.stage == "registering":
        assert scene.world.saturno.count_idempotency_keys("register") == 1


async def killed_thrice(scene: Scene, _cell: Cell) -> None:
    """Three starts of the job die mid-process; the next start must not run it a fourth time."""
    agent = await _processing(scene)  # start 1
    for _ in range(2):  # starts 2 and 3
        agent.send(signal.SIGKILL)
        await agent.wait(STEP_TIMEOUT)
        agent = await scene.start(processor="slow-manifest", process_seconds=HOLD)
        await scene.reach(agent, event="stage", stage="process")
    agent.send(signal.SIGKILL)
    await agent.wait(STEP_TIMEOUT)
    last = await scene.start()
    await last.wait(LIFE_TIMEOUT)
    (end,) = {r.body["error"] for r in scene.world.saturno.reports_for("done")}
    assert "started 3 times" in end


async def saturno_fault(scene: Scene, cell: Cell) -> None:
    """Saturno refuses connections, answers late, 503s or 400s the boot or the end report."""
    saturno = scene.world.saturno
    kind: ReportKind = "register" if cell.stage == "registering" else "done"
    settings: dict[str, str] = {}
    if cell.fault == "saturno-slow":
        saturno.delay(kind, 30.0)  # past the deadline below: the agent must not wait for it
        settings["notify_deadline"] = "4s"
    elif cell.fault == "saturno-503-then-200":
        saturno.fail(kind, 503, times=2)
    elif cell.fault == "saturno-400":
        saturno.fail(kind, 400)
    elif cell.fault == "saturno-down-for-good":
        settings["notify_deadline"] = "4s"
    if cell.fault.startswith("saturno-down") and kind == "register":
        await scene.saturno_down()
    agent = await scene.start(**settings)
    if kind == "register" and cell.fault == "saturno-down":
        await asyncio.sleep(3.0)  # a few refused tries
        await scene.saturno_up()
    # Saturno learns the VM's address from the boot report: no job comes before it settled.
    await scene.reach(agent, event="state", state="idle")
    if kind == "done" and cell.fault.startswith("saturno-down"):
        await scene.saturno_down()
    assert await scene.post_job(agent) == 200
    if kind == "done" and cell.fault == "saturno-down":
        await scene.reach(agent, event="state", state="reporting")
        await asyncio.sleep(3.0)
        await scene.saturno_up()
    await agent.wait(LIFE_TIMEOUT)
    tries = saturno.reports_for(kind)
    if cell.fault == "saturno-503-then-200":
        assert [r.status for r in tries] == [503, 503, 200]
    if cell.fault in ("saturno-400", "saturno-slow"):
        assert len(tries) == 1, "a final 400, or a report past its deadline, is not retried"
    assert len({r.idempotency_key for r in tries}) <= 1


async def metadata_down(scene: Scene, _cell: Cell) -> None:
    """The metadata server answers 503 for the first seconds of boot; the agent waits for it."""
    scene.world.metadata.set_down(True)
    agent = scene.agent()
    await agent.start()
    await asyncio.sleep(5.0)
    assert not agent.events("listening"), "the agent must not boot without its metadata"
    scene.world.metadata.set_down(False)
    assert await scene.post_job(agent) == 200
    await agent.wait(LIFE_TIMEOUT)
    boot = scene.world.saturno.reports_for("register")[-1].body
    assert boot["project"] == "demo-project", "it fell back to local mode"


async def watch_dropped(scene: Scene, cell: Cell) -> None:
    """Mid-job, every hanging watch is cut; the preemption that follows is still seen."""
    agent = await HOLDS[cell.stage].enter(scene)
    await wait_until(lambda: scene.world.metadata.drop_watches() > 0, STEP_TIMEOUT, 0.05)
    await asyncio.sleep(0.5)
    scene.world.metadata.set_preempted(True)
    await scene.world.saturno.wait_for("done", timeout=STEP_TIMEOUT)
    await agent.wait(LIFE_TIMEOUT)


async def compute_fault(scene: Scene, cell: Cell) -> None:
    """The stop request is refused (403), fails (500) or never answered: poweroff follows."""
    compute = scene.world.compute
    if cell.fault == "compute-hang":
        compute.hang(operation="stop")
    else:
        compute.fail(int(cell.fault.removeprefix("compute-")), operation="stop", times=None)
    agent = await scene.start(self_stop="stop")
    assert await scene.post_job(agent) == 200
    await agent.wait(LIFE_TIMEOUT * 3)
    assert compute.calls_for("stop"), "the Compute API was not asked first"


FAULTS: dict[str, Callable[[Scene, Cell], Awaitable[None]]] = {
    "kill-9": interrupted,
    "kill-9-thrice": killed_thrice,
    "sigterm": interrupted,
    "saturno-down": saturno_fault,
    "saturno-down-for-good": saturno_fault,
    "saturno-slow": saturno_fault,
    "saturno-503-then-200": saturno_fault,
    "saturno-400": saturno_fault,
    "metadata-down": metadata_down,
    "preempted-watch-dropped": watch_dropped,
    "compute-403": compute_fault,
    "compute-500": compute_fault,
    "compute-hang": compute_fault,
}


# -- the test --------------------------------------------------------------------------------


@pytest.mark.parametrize("cell", MATRIX, ids=[cell.id for cell in MATRIX])
async def test_fault_matrix(scene: Scene, cell: Cell) -> None:
    """After the fault: one end report (one key), bounded starts, right exit codes, one stop."""
    await FAULTS[cell.fault](scene, cell)
    saturno = scene.world.saturno

    assert [agent.returncode for agent in scene.agents] == list(cell.exits)
    keys = saturno.idempotency_keys("done")
    if cell.status is None:
        assert keys == set(), "Saturno was down for good, yet got an end report"
    else:
        assert len(keys) == 1, [r.body for r in saturno.reports_for("done")]
        statuses = {r.body["status"] for r in saturno.reports_for("done")}
        assert statuses == {cell.status}
    assert scene.job_starts() == cell.starts <= 3
    if cell.stops == "compute":
        vm = scene.world.compute.instance("demo-project", "us-east1-b", "notraining-vm-1")
        assert vm is not None and vm.status in ("STOPPING", "TERMINATED")
        assert scene.systemctl_calls() == []
    else:
        assert scene.systemctl_calls() == ["poweroff"]
