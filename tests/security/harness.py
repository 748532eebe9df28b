"""What the hostile-input proofs share: Hypothesis profiles, traps, and the real agent in batches.

Everything here runs on loopback. A :class:`Trap` is a real server that records every
request it gets, standing for what an attacker aims at (an internal service, the
metadata server); a proof ends with "the trap saw nothing". :func:`run_agents` runs
one REAL agent process per job against one emulator world, all at once, since each
VM takes exactly one job and the attacks are independent.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aiohttp import web
from hypothesis import HealthCheck, settings
from notraining_agent.cli.submit import Answer, submit
from notraining_agent.job.paths import safe_part
from notraining_testkit.emulators._server import RunningServer, serve
from notraining_testkit.emulators.suite import AgentProcess, World

# -- Hypothesis ---------------------------------------------------------------------------

settings.register_profile(
    "security-ci",
    max_examples=300,
    deadline=None,  # shared CI runners stall; a deadline would make the proofs flaky
    suppress_health_check=[HealthCheck.too_slow],
)
settings.register_profile(
    "security-deep",
    max_examples=20_000,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
PROFILE_NAME = os.environ.get("SECURITY_HYPOTHESIS_PROFILE", "security-ci")
PROPERTY = settings(settings.get_profile(PROFILE_NAME))
"""Decorator for every property of the security suite: bounded in CI, deeper on demand.

``SECURITY_HYPOTHESIS_PROFILE=security-deep pytest tests/security/test_properties.py``
runs 20 000 examples per property instead of 300.
"""

# -- traps --------------------------------------------------------------------------------


@dataclass
class Trap:
    """A real HTTP server that answers every path and remembers who came."""

    server: RunningServer
    hits: list[str] = field(default_factory=list)

    @property
    def netloc(self) -> str:
        """``host:port``."""
        return self.server.netloc

    @property
    def port(self) -> int:
        """The bound port."""
        return self.server.port

    def url(self, path: str = "/") -> str:
        """A URL on this trap."""
        return f"{self.server.url}{path}"


async def start_trap(host: str, port: int = 0, *, body: bytes = b"SECRET") -> Trap:
    """Serve a trap on ``host:port`` (loopback addresses such as 127.0.0.2 all work on Linux)."""
    hits: list[str] = []

    async def answer(request: web.Request) -> web.Response:
        hits.append(request.path_qs)
        return web.Response(body=body, headers={"Metadata-Flavor": "Google"})

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", answer)
    return Trap(server=await serve(app, host=host, port=port), hits=hits)


# -- the real agent, one per job ----------------------------------------------------------

BOOT_TIMEOUT = 45.0
JOB_TIMEOUT = 60.0


def saturno_token(world: World) -> str:
    """What Saturno sends: an HS256 JWT signed with the shared secret, raw."""
    return world.saturno_token()


def job_dir_name(ntd_transaction_id: str) -> str:
    """The folder name the agent gives a job (notraining_agent.life.store.StateStore.job_dir)."""
    digest = hashlib.sha256(ntd_transaction_id.encode()).hexdigest()[:12]
    return f"{safe_part(ntd_transaction_id)}-{digest}"


@dataclass
class Ended:
    """One job as the real agent ended it: its POST answer, end report and folders."""

    answer: Answer
    report: dict[str, Any]
    state_dir: Path
    exit_code: int | None

    @property
    def job_dir(self) -> Path:
        """Where the agent worked on this job."""
        return self.state_dir / "jobs" / job_dir_name(str(self.report["ntd_transaction_id"]))


def files_under(root: Path) -> set[Path]:
    """Every file, link and folder below ``root`` (links are not followed)."""
    return set(root.rglob("*")) if root.exists() else set()


async def run_agents(
    world: World, base: Path, jobs: Sequence[Mapping[str, Any]], **agent_settings: str
) -> dict[str, Ended]:
    """Start one agent per job, post each job to its own agent, wait for every end report.

    Returns the outcome per ``ntd_transaction_id``. Agents share ``agent_settings``
    (``NOTRAINING_*``); each has its own state_dir under ``base``.
    """
    agents = [
        AgentProcess(world.agent_env(base / f"agent-{index}" / "state", **agent_settings))
        for index in range(len(jobs))
    ]
    booted = len(world.saturno.reports_for("register", accepted_only=True))
    done = len(world.saturno.reports_for("done"))
    try:
        await asyncio.gather(*(agent.start() for agent in agents))
        boots = await world.saturno.wait_for(
            "register", count=booted + len(jobs), timeout=BOOT_TIMEOUT, accepted_only=True
        )
        ports = sorted({int(report.body["port"]) for report in boots[booted:]})
        token = saturno_token(world)
        answers = await asyncio.gather(
            *(
                submit(f"http://127.0.0.1:{port}", job, authorization=token, as_json=True)
                for port, job in zip(ports, jobs, strict=True)
            )
        )
        reports = await world.saturno.wait_for("done", count=done + len(jobs), timeout=JOB_TIMEOUT)
        reports = reports[done:]
        codes = await asyncio.gather(*(agent.wait(JOB_TIMEOUT) for agent in agents))
    finally:
        await asyncio.gather(*(agent.close() for agent in agents))
    by_id = {str(r.body["ntd_transaction_id"]): r.body for r in reports}
    ended: dict[str, Ended] = {}
    for job, answer in zip(jobs, answers, strict=True):
        ntd = str(job["ntd_transaction_id"])
        state_dir = _state_dir_of(base, ntd, len(agents))
        ended[ntd] = Ended(answer, by_id[ntd], state_dir, codes[_index(state_dir)])
    return ended


def _state_dir_of(base: Path, ntd_transaction_id: str, count: int) -> Path:
    name = job_dir_name(ntd_transaction_id)
    for index in range(count):
        state_dir = base / f"agent-{index}" / "state"
        if (state_dir / "jobs" / name).exists():
            return state_dir
    raise AssertionError(f"no agent under {base} has a folder for job {ntd_transaction_id}")


def _index(state_dir: Path) -> int:
    return int(state_dir.parent.name.removeprefix("agent-"))


async def boot_agent(world: World, base: Path, **agent_settings: str) -> tuple[AgentProcess, str]:
    """Start one real agent and wait for its boot report; return it and its receiver's URL."""
    agent = AgentProcess(world.agent_env(base / "state", **agent_settings))
    before = len(world.saturno.reports_for("register", accepted_only=True))
    await agent.start()
    reports = await world.saturno.wait_for(
        "register", count=before + 1, timeout=BOOT_TIMEOUT, accepted_only=True
    )
    return agent, f"http://127.0.0.1:{reports[-1].body['port']}"
