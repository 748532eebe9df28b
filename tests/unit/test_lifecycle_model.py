"""A Hypothesis model of the lifecycle: random faults, restarts and time, four invariants held.

The real :class:`~.lifecycle.Lifecycle`, :class:`~.saturno.SaturnoClient`,
:class:`~notraining_agent.life.store.StateStore` and watchers run on an event loop whose clock is
virtual (it jumps to the next timer instead of waiting), so hours of timeouts,
backoff and grace pass in microseconds and every run is deterministic. Only the
edges are fakes: Saturno's HTTP side, the metadata server's watches, the job
itself and the VM stop. A kill -9 is a cancelled life whose later writes are lost;
a restart reads ``state_dir`` back with the real store.
"""

from __future__ import annotations

import asyncio
import json
import selectors
import shutil
import tempfile
from collections import Counter
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

import aiohttp
import pytest
from hypothesis import HealthCheck, event, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule
from notraining_agent.config import Settings
from notraining_agent.errors import JobError
from notraining_agent.gce import InstanceInfo
from notraining_agent.gce.metadata import MetadataClient
from notraining_agent.host.systemd import Notifier
from notraining_agent.job.runner import JobOutcome
from notraining_agent.job.spec import JobSpec
from notraining_agent.life.lifecycle import BootFacts, Collaborators, Lifecycle
from notraining_agent.life.saturno import SaturnoClient
from notraining_agent.life.states import AgentState, Offer
from notraining_agent.life.store import MAX_ATTEMPTS, AgentRecord, StateStore
from notraining_agent.util.retry import Clock

EPOCH = 1_700_000_000.0
IDS = ("ntd-a", "ntd-b")
SETTINGS = Settings(
    register_url="http://saturno.test/register/",
    done_url="http://saturno.test/done/",
    idle_timeout=600.0,
    job_timeout=300.0,
    shutdown_grace=120.0,
    notify_deadline=900.0,
    self_stop="stop",
)
SLOW_ANSWER = 45.0  # Saturno "slow": answers after the client's 30 s attempt timeout
SATURNO_MODES = ("ok", "down", "slow", "503", "400")
SHUTTING_DOWN = (AgentState.REPORTING, AgentState.GRACE, AgentState.STOPPING)


# -- virtual time ------------------------------------------------------------------------


class _JumpingSelector(selectors.DefaultSelector):
    """Polls without blocking; when nothing is ready, moves the loop's clock to the next timer."""

    loop: VirtualTimeLoop

    def select(self, timeout: float | None = None) -> list[tuple[selectors.SelectorKey, int]]:
        events = super().select(0)
        if not events and timeout:
            self.loop.now += timeout
        return events


class VirtualTimeLoop(asyncio.SelectorEventLoop):
    """An event loop whose ``time()`` only moves when every task is waiting on a timer."""

    def __init__(self) -> None:
        self.now = 0.0
        selector = _JumpingSelector()
        super().__init__(selector)
        selector.loop = self

    def time(self) -> float:
        return self.now


class VirtualClock(Clock):
    """The lifecycle's clock, read off the virtual loop (``sleep`` is asyncio's, hence virtual)."""

    def __init__(self, loop: VirtualTimeLoop) -> None:
        self._loop = loop

    def monotonic(self) -> float:
        return self._loop.time()

    def wall(self) -> float:
        return EPOCH + self._loop.time()


async def _inline_to_thread(func: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Any:
    """``asyncio.to_thread`` without a thread: a real thread would let virtual time race it."""
    await asyncio.sleep(0)
    return func(*args, **kwargs)


# -- the edges ---------------------------------------------------------------------------


@dataclass
class Received:
    """One report as Saturno's side saw it (``status`` None: it never learned the answer)."""

    kind: str
    key: str
    body: dict[str, Any]
    status: int | None
    at: float


class FakeSaturno:
    """Stands in for aiohttp's session under the real SaturnoClient; ``mode`` is the fault."""

    def __init__(self, clock: Clock) -> None:
        self.clock = clock
        self.mode = "ok"
        self.received: list[Received] = []

    def post(self, url: str, **kwargs: Any) -> _Call:
        return _Call(self, url, kwargs)

    def done_keys(self) -> set[str]:
        return {r.key for r in self.received if r.kind == "done"}

    def accepted_keys(self) -> set[str]:
        return {r.key for r in self.received if r.status is not None and r.status < 300}


class _Response:
    def __init__(self, status: int) -> None:
        self.status = status
        self.content = self
        self.headers: dict[str, str] = {}  # no Retry-After: the policy's own backoff applies

    async def read(self, _n: int) -> bytes:
        return b'{"status": "ok"}'


class _Call:
    def __init__(self, saturno: FakeSaturno, url: str, kwargs: dict[str, Any]) -> None:
        self._s, self._url, self._kw = saturno, url, kwargs

    async def __aenter__(self) -> _Response:
        saturno, mode = self._s, self._s.mode
        await asyncio.sleep(0.01)  # a network round trip
        if mode == "down":
            raise aiohttp.ClientConnectionError("Connection refused")
        status = {"ok": 200, "slow": 200, "503": 503, "400": 400}[mode]
        kind = "register" if "register" in self._url else "done"
        key = self._kw["headers"]["Idempotency-Key"]
        received = Received(kind, key, self._kw["json"], status, saturno.clock.wall())
        saturno.received.append(received)
        if mode == "slow":
            timeout = self._kw["timeout"].total
            await asyncio.sleep(min(SLOW_ANSWER, timeout))
            if timeout <= SLOW_ANSWER:
                raise TimeoutError  # Saturno took it; the agent never heard back
        return _Response(status)

    async def __aexit__(self, *_exc: object) -> None:
        return None


class FakeMetadata:
    """The watched metadata paths, changed by the model; ``watch`` yields each new value."""

    def __init__(self) -> None:
        self.values = {
            "instance/preempted": "FALSE",
            "instance/maintenance-event": "NONE",
            "instance/attributes/": "{}",
        }
        self._changed = asyncio.Event()
        self.states: list[str] = []

    def set(self, path: str, value: str) -> None:
        self.values[path] = value
        self._changed.set()
        self._changed = asyncio.Event()

    async def watch(
        self, path: str, *, recursive: bool = False, timeout_sec: int = 60
    ) -> AsyncIterator[str]:
        last = None
        while True:
            changed = self._changed
            if self.values[path] != last:
                last = self.values[path]
                yield last
            else:
                await changed.wait()

    async def put_guest_attribute(self, _key: str, value: str) -> None:
        self.states.append(value)


class DiskStore(StateStore):
    """The real store; after a kill -9 (``dead``) nothing more reaches the disk."""

    dead = False

    async def save(self, record: AgentRecord) -> None:
        if not self.dead:
            await super().save(record)


class WatchedLifecycle(Lifecycle):
    """The real lifecycle, telling the model what each offer met and how it was answered."""

    def __init__(
        self,
        parts: Collaborators,
        record: AgentRecord,
        on_offer: Callable[[Offer, AgentState, bool], None],
    ) -> None:
        super().__init__(parts, record)
        self._on_offer = on_offer

    async def offer(self, spec: JobSpec, *, via: str) -> Offer:
        before, ended = self.state, self.status()["end_report"] is not None
        answer = await super().offer(spec, via=via)
        self._on_offer(answer, before, ended)
        return answer


@dataclass
class JobPlan:
    """How the next job start behaves: how long it takes and how it ends."""

    seconds: float
    result: str  # done, fail (JobError) or crash (a bug in the processor)


@dataclass
class Process:
    """One run of the agent on the shared state_dir."""

    life: WatchedLifecycle
    task: asyncio.Task[int]
    store: DiskStore


def _fields(ntd: str) -> dict[str, Any]:
    return {
        "ntd_transaction_id": ntd,
        "no_transaction_id": f"no-{ntd}",
        "country": "MX",
        "channel": "instagram",
        "label": "summer",
        "category": "POP",
        "zip_art": "https://art.example.com/package.zip",
    }


def _spec(ntd: str) -> JobSpec:
    return JobSpec(
        ntd, f"no-{ntd}", "MX", "instagram", "summer", "POP", _fields(ntd)["zip_art"], ()
    )


def _instance(preempted: bool) -> InstanceInfo:
    return InstanceInfo(
        name="vm-1",
        instance_id="4518373217654321234",
        project="proj-1",
        zone="us-east1-b",
        internal_ip="10.0.0.2",
        external_ip=None,
        preempted=preempted,
    )


class LifecycleModel(RuleBasedStateMachine):
    """Job posts, re-posts, Saturno faults, preemption, kill -9, SIGTERM, restarts, time."""

    def __init__(self) -> None:
        super().__init__()
        self.loop = VirtualTimeLoop()
        self.patch = pytest.MonkeyPatch()
        self.patch.setattr(asyncio, "to_thread", _inline_to_thread)
        shm = Path("/dev/shm")  # fsync on tmpfs is free; the state files stay real files
        self.dir = Path(
            tempfile.mkdtemp(prefix="lifecycle-model-", dir=shm if shm.is_dir() else None)
        )
        self.clock = VirtualClock(self.loop)
        self.saturno = FakeSaturno(self.clock)
        self.metadata = FakeMetadata()
        self.plan = JobPlan(5.0, "done")
        self.boot = 1
        self.process: Process | None = None
        self.accepted: list[str] = []
        self.starts: Counter[str] = Counter()
        self.running = 0
        self.violations: list[str] = []
        self.exits: list[int] = []
        self.stops = 0
        self.start_process()

    # -- plumbing --------------------------------------------------------------------------

    def run(self, awaitable: Any) -> Any:
        return self.loop.run_until_complete(awaitable)

    @property
    def alive(self) -> bool:
        return self.process is not None

    def start_process(self) -> None:
        store = DiskStore(self.dir)
        record = store.open()
        preempted = self.metadata.values["instance/preempted"] == "TRUE"
        boot = f"boot-{self.boot}"

        async def boot_facts() -> BootFacts:
            return BootFacts(boot, 8080, "0.0.0-test", True)

        parts = Collaborators(
            settings=SETTINGS,
            instance=_instance(preempted),
            metadata=cast(MetadataClient, self.metadata),
            store=store,
            saturno=SaturnoClient(
                cast(aiohttp.ClientSession, self.saturno), lambda: "token", clock=self.clock
            ),
            run_job=self._run_job,
            stop_vm=lambda: self._stop_vm(record),
            boot_facts=boot_facts,
            notifier=Notifier({}),
            clock=self.clock,
            metadata_hosts=frozenset(),
        )
        life = WatchedLifecycle(parts, record, self._on_offer)
        self.process = Process(life, self.loop.create_task(life.run()), store)
        self.run(asyncio.sleep(0.1))
        self._reap()

    def _reap(self) -> None:
        """Note how a finished process ended: a returned exit code, never an exception."""
        if self.process is None or not self.process.task.done():
            return
        task, self.process = self.process.task, None
        if task.cancelled():
            return
        if task.exception() is not None:
            self.violations.append(f"the life raised {task.exception()!r}")
            return
        self.exits.append(task.result())
        self.boot += 1  # the VM was stopped: a later start is a new boot

    def _end(self, kill: bool) -> None:
        assert self.process is not None
        self.process.store.dead = kill
        task = self.process.task
        task.cancel()
        self.run(asyncio.wait({task}))
        if not task.cancelled() and task.exception() is not None:
            self.violations.append(f"cancelling the life raised {task.exception()!r}")
        self.process = None

    # -- the fakes' hooks --------------------------------------------------------------------

    def _on_offer(self, offer: Offer, before: AgentState, ended: bool) -> None:
        if offer.outcome != "accepted":
            return
        if ended or before in SHUTTING_DOWN:
            self.violations.append(
                f"{offer.ntd_transaction_id} accepted in {before} (ended={ended})"
            )
        self.accepted.append(offer.ntd_transaction_id)
        if len(self.accepted) > 1:
            self.violations.append(f"a second job accepted on one VM: {self.accepted}")

    async def _run_job(self, spec: JobSpec, _job_dir: Path) -> JobOutcome:
        self.starts[spec.ntd_transaction_id] += 1
        self.running += 1
        if self.running > 1:
            self.violations.append("two job runs at once")
        try:
            plan = self.plan
            await asyncio.sleep(plan.seconds)
            if plan.result == "fail":
                raise JobError("the zip was refused")
            if plan.result == "crash":
                raise RuntimeError("processor bug")
            return JobOutcome(arts=3, output_uri="file:///results/x")
        finally:
            self.running -= 1

    async def _stop_vm(self, record: AgentRecord) -> int:
        end, now = record.end, self.clock.wall()
        if end is None or end.pending:
            self.violations.append(f"stop requested with the end report {end and end.outcome}")
        elif end.outcome == "expired" and now < end.created_at + SETTINGS.notify_deadline:
            self.violations.append("stop requested before notify_deadline passed")
        elif end.outcome == "delivered" and end.key not in self.saturno.accepted_keys():
            self.violations.append("end report marked delivered but Saturno never took it")
        self.stops += 1
        return 0

    # -- rules -------------------------------------------------------------------------------

    @precondition(lambda self: self.alive)
    @rule(ntd=st.sampled_from(IDS))
    def post_job(self, ntd: str) -> None:
        assert self.process is not None
        self.run(self.process.life.offer(_spec(ntd), via="http"))
        self._reap()

    @precondition(lambda self: self.alive)
    @rule(ntd=st.sampled_from(IDS))
    def job_attribute(self, ntd: str) -> None:
        attributes = {"notraining-job": json.dumps(_fields(ntd))}
        self.metadata.set("instance/attributes/", json.dumps(attributes))
        self.run(asyncio.sleep(0.1))
        self._reap()

    @rule(seconds=st.sampled_from([0.5, 3.0, 31.0, 125.0, 301.0, 601.0, 901.0]))
    def time_passes(self, seconds: float) -> None:
        self.run(asyncio.sleep(seconds))
        self._reap()

    @rule(mode=st.sampled_from(SATURNO_MODES))
    def saturno_turns(self, mode: str) -> None:
        self.saturno.mode = mode

    @rule(
        seconds=st.sampled_from([0.5, 20.0, 200.0, 5000.0]),
        result=st.sampled_from(["done", "fail", "crash"]),
    )
    def next_job_is(self, seconds: float, result: str) -> None:
        self.plan = JobPlan(seconds, result)

    @precondition(lambda self: self.metadata.values["instance/preempted"] == "FALSE")
    @rule()
    def preempt(self) -> None:
        self.metadata.set("instance/preempted", "TRUE")
        self.run(asyncio.sleep(0.1))
        self._reap()

    @precondition(lambda self: self.alive)
    @rule()
    def kill_9(self) -> None:
        self._end(kill=True)

    @precondition(lambda self: self.alive)
    @rule()
    def sigterm(self) -> None:
        self._end(kill=False)
        self.boot += 1  # Saturno or GCE stopped the VM; a later start is a new boot

    @precondition(lambda self: not self.alive)
    @rule()
    def restart(self) -> None:
        self.start_process()

    # -- invariants --------------------------------------------------------------------------

    @invariant()
    def nothing_went_wrong(self) -> None:
        assert not self.violations, self.violations

    @invariant()
    def attempts_are_bounded(self) -> None:
        assert all(n <= MAX_ATTEMPTS for n in self.starts.values()), self.starts

    @invariant()
    def saturno_sees_one_end_report(self) -> None:
        assert len(self.saturno.done_keys()) <= 1, self.saturno.received

    # -- the end -----------------------------------------------------------------------------

    def teardown(self) -> None:
        try:
            if not self.violations:
                self._drive_to_the_end()
                self._check_the_end()
        finally:
            if self.process is not None:
                self._end(kill=True)
            self.loop.close()
            self.patch.undo()
            shutil.rmtree(self.dir, ignore_errors=True)

    def _drive_to_the_end(self) -> None:
        """Faults cleared, the VM (re)started as often as needed until a life ends by itself."""
        self.saturno.mode, self.plan = "ok", JobPlan(1.0, "done")
        exits = len(self.exits)
        for _ in range(MAX_ATTEMPTS + 2):
            if self.process is None:
                self.start_process()
            if self.process is not None:
                self.run(asyncio.wait({self.process.task}, timeout=100_000))
                self._reap()
            if len(self.exits) > exits:
                return
        raise AssertionError("the agent never ended by itself")

    def _check_the_end(self) -> None:
        assert not self.violations, self.violations
        assert self.exits[-1] == 0
        record = StateStore(self.dir).open()
        end = record.end
        assert end is not None and not end.pending, end
        assert self.saturno.done_keys() <= {end.key}
        if end.outcome in ("delivered", "refused"):
            assert end.key in self.saturno.done_keys()
        for ntd in self.accepted:
            assert record.job is not None and record.job.spec.ntd_transaction_id == ntd
            assert record.job.state.final, record.job
            assert end.body["ntd_transaction_id"] == ntd, end.body
        assert self.stops >= 1
        event(f"ended {end.body['status']}, report {end.outcome}")
        event(f"job starts: {max(self.starts.values(), default=0)}")


LifecycleModel.TestCase.settings = settings(
    max_examples=400,
    stateful_step_count=50,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)


class TestLifecycleModel(LifecycleModel.TestCase):  # type: ignore[valid-type,misc]
    """Random interleavings keep the four lifecycle invariants (runs 200 examples)."""
