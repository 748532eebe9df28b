"""Fault tests' stage: the emulators, agents on one state_dir, and ways to hold a stage.

Holding the agent in a stage long enough to hurt it there:

- registering: Saturno answers the boot report late (``SaturnoEmulator.delay``);
- downloading: the art server sends the zip slowly (``ArtServer.throttle``);
- processing: the ``slow-manifest`` processor, a plugin found through the
  ``notraining_agent.processors`` entry point, waits ``FAULTS_PROCESS_SECONDS``
  before doing what ``manifest`` does;
- reporting: Saturno answers the end report late;
- grace: a long ``shutdown_grace``;
- stopping: the Compute API never answers the stop request (``ComputeEmulator.hang``).
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from notraining_agent.cli.submit import submit
from notraining_testkit.emulators._server import serve
from notraining_testkit.emulators.suite import AgentProcess, LogLine, World, start_world

from tests.integration.conftest import fake_systemctl_calls, saturno_token

STEP_TIMEOUT = 30.0
FAST: dict[str, str] = {
    "shutdown_grace": "0.5s",
    "self_stop": "poweroff",
    "idle_timeout": "60s",
    "notify_deadline": "20s",
    "job_timeout": "60s",
}
"""Settings that keep a whole life within seconds; a cell overrides what it tests."""

_PLUGIN = '''"""The manifest processor after a wait: holds a job in the process stage."""
import asyncio
import os

from notraining_agent.processors.manifest import process as manifest


async def process(ctx):
    seconds = float(os.environ.get("FAULTS_PROCESS_SECONDS", "0"))
    for _ in range(int(seconds * 10)):
        await asyncio.sleep(0.1)
    return await manifest(ctx)
'''


@pytest.fixture(scope="session")
def plugin_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder on PYTHONPATH holding the ``slow-manifest`` processor and its entry point."""
    root = tmp_path_factory.mktemp("plugins")
    (root / "faults_slow_processor.py").write_text(_PLUGIN, encoding="utf-8")
    info = root / "faults_slow_processor-0.0.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(
        "Metadata-Version: 2.1\nName: faults-slow-processor\nVersion: 0.0.0\n", encoding="utf-8"
    )
    (info / "entry_points.txt").write_text(
        "[notraining_agent.processors]\nslow-manifest = faults_slow_processor:process\n",
        encoding="utf-8",
    )
    return root


@dataclass
class Scene:
    """One VM's world and the agent processes that ran on its state_dir, oldest first."""

    world: World
    tmp_path: Path
    plugin_path: Path
    agents: list[AgentProcess] = field(default_factory=list)

    def agent(
        self, *, process_seconds: float = 0.0, state_dir: Path | None = None, **settings: str
    ) -> AgentProcess:
        """A new agent process (not started) on the shared state_dir, FAST unless overridden."""
        env = self.world.agent_env(self.tmp_path / "state", **{**FAST, **settings})
        if state_dir is not None:
            env["NOTRAINING_STATE_DIR"] = str(state_dir)
        env["PYTHONPATH"] = os.pathsep.join(
            [str(self.plugin_path), *filter(None, [os.environ.get("PYTHONPATH")])]
        )
        env["FAULTS_PROCESS_SECONDS"] = str(process_seconds)
        process = AgentProcess(env)
        self.agents.append(process)
        return process

    async def start(self, **settings: Any) -> AgentProcess:
        """Start a new agent and wait until its receiver listens."""
        agent = self.agent(**settings)
        await agent.start()
        await self.port(agent)
        return agent

    async def port(self, agent: AgentProcess) -> int:
        """The receiver's port, from the agent's ``listening`` log line."""
        line = await agent.wait_for_log(lambda x: x.get("event") == "listening", STEP_TIMEOUT)
        return int(line["port"])

    async def post_job(self, agent: AgentProcess, ntd: str = "ntd-1") -> int:
        """POST the package's job to ``agent`` the way Saturno does; the HTTP status."""
        url = f"http://127.0.0.1:{await self.port(agent)}"
        payload = self.world.art.job_payload(ntd, base_url=self.world.url("art"))
        answer = await submit(url, payload, authorization=saturno_token(self.world))
        return answer.status

    async def reach(self, agent: AgentProcess, **fields: str) -> LogLine:
        """Wait for the first log line of ``agent`` carrying every one of ``fields``."""

        def match(line: LogLine) -> bool:
            return all(line.get(key) == value for key, value in fields.items())

        return await agent.wait_for_log(match, STEP_TIMEOUT)

    async def saturno_down(self) -> None:
        """Close Saturno's port: every call is refused until :meth:`saturno_up`."""
        await self.world.servers.pop("saturno").close()

    async def saturno_up(self) -> None:
        """Serve Saturno again on the port the agent knows."""
        port = int(self.world.saturno.base_url.rsplit(":", 1)[1])
        self.world.servers["saturno"] = await serve(self.world.saturno.app(), port=port)

    def job_starts(self) -> int:
        """How many times the job was started, over every process."""
        return sum(len(agent.events("job_started")) for agent in self.agents)

    def systemctl_calls(self) -> list[str]:
        """What the fake systemctl was asked to do."""
        return fake_systemctl_calls(self.tmp_path)

    async def close(self) -> None:
        """Kill what still runs, stop the emulators."""
        for agent in self.agents:
            await agent.close()
        self.world.metadata.drop_watches()  # else each dead agent's long poll holds close() 1 s
        await self.world.close()


@pytest.fixture
async def scene(tmp_path: Path, plugin_path: Path) -> AsyncIterator[Scene]:
    """A fresh world and state_dir for one test."""
    world = await start_world()
    made = Scene(world, tmp_path, plugin_path)
    try:
        yield made
    finally:
        await made.close()
