"""Every emulator at once, wired like a real VM's world, and the agent as a real subprocess.

``notraining-agent demo``, the integration tests and the benchmarks all use this:
one :class:`World` (metadata server, Saturno, Compute API, Secret Manager, art
server) and :class:`AgentProcess`, the agent started with ``python -m agent run``
and pointed at the world through the same variables and attributes a VM uses.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import secrets
import signal
import sys
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import jwt

from notraining_testkit.emulators._server import RunningServer, serve
from notraining_testkit.emulators.artgen import ArtPackage, generate_package
from notraining_testkit.emulators.artserver import ArtServer
from notraining_testkit.emulators.compute import ComputeEmulator
from notraining_testkit.emulators.metadata import DEFAULT_ACCESS_TOKEN, MetadataEmulator
from notraining_testkit.emulators.saturno import SaturnoEmulator
from notraining_testkit.emulators.secretmanager import SecretManagerEmulator

SECRET_REF = "projects/demo-project/secrets/notraining-jwt/versions/1"
LogLine = dict[str, Any]


@dataclass
class World:
    """The emulators a VM's agent talks to, served on loopback."""

    metadata: MetadataEmulator
    saturno: SaturnoEmulator
    compute: ComputeEmulator
    secrets: SecretManagerEmulator
    art: ArtServer
    jwt_secret: str
    servers: dict[str, RunningServer] = field(default_factory=dict)

    def url(self, name: str) -> str:
        """Base URL of the emulator called ``name`` (metadata, saturno, compute, secrets, art)."""
        return self.servers[name].url

    def saturno_token(self, **claims: Any) -> str:
        """What Saturno sends the agent: an HS256 JWT with the shared secret, raw like the seed."""
        now = int(time.time())
        payload = {"sub": "saturno", "iat": now, "exp": now + 300, **claims}
        return jwt.encode(payload, self.jwt_secret, algorithm="HS256")

    def agent_env(self, state_dir: Path, **settings: str) -> dict[str, str]:
        """The environment of an agent on this world's VM; ``settings`` become NOTRAINING_*.

        ``PATH`` starts with a fake ``systemctl`` (see :func:`fake_systemctl`): the
        poweroff fallback must never reach the real one on a developer's machine.
        """
        fake_bin = fake_systemctl(state_dir.parent / "fake-bin")
        env = {
            key: value
            for key, value in os.environ.items()
            if not key.startswith(("NOTRAINING_", "GCE_METADATA", "NOTIFY_SOCKET", "WATCHDOG"))
        }
        env["GCE_METADATA_HOST"] = self.servers["metadata"].netloc
        env["GCE_METADATA_IP"] = self.servers["metadata"].netloc
        env["NOTRAINING_STATE_DIR"] = str(state_dir)
        env["PYTHONUNBUFFERED"] = "1"
        env["PATH"] = f"{fake_bin}{os.pathsep}{env.get('PATH', '')}"
        for key, value in settings.items():
            env["NOTRAINING_" + key.upper()] = value
        return env

    async def close(self) -> None:
        """Stop every emulator."""
        for server in reversed(list(self.servers.values())):
            await server.close()


FAKE_SYSTEMCTL = """#!/bin/sh
# Stands in for systemctl in the demo and tests: records the call, powers nothing off.
echo "$@" >> "$(dirname "$0")/systemctl.calls"
exit "${FAKE_SYSTEMCTL_EXIT:-0}"
"""


def fake_systemctl(folder: Path) -> Path:
    """Write the fake ``systemctl`` into ``folder``; its calls land in ``systemctl.calls``."""
    folder.mkdir(parents=True, exist_ok=True)
    script = folder / "systemctl"
    script.write_text(FAKE_SYSTEMCTL, encoding="utf-8")
    script.chmod(0o755)
    return folder


async def start_world(
    *,
    package: ArtPackage | None = None,
    attributes: Mapping[str, str] | None = None,
    shutdown_grace: str = "1s",
) -> World:
    """Serve every emulator and set the VM's ``notraining-*`` attributes to point at them."""
    jwt_secret = secrets.token_urlsafe(48)
    world = World(
        metadata=MetadataEmulator(),
        saturno=SaturnoEmulator(jwt_secret=jwt_secret),
        compute=ComputeEmulator(expected_token=DEFAULT_ACCESS_TOKEN),
        secrets=SecretManagerEmulator(expected_token=DEFAULT_ACCESS_TOKEN),
        art=ArtServer(package or generate_package(4, seed=7)),
        jwt_secret=jwt_secret,
    )
    world.secrets.add_secret(SECRET_REF, jwt_secret)
    for name, emulator in (
        ("metadata", world.metadata),
        ("saturno", world.saturno),
        ("compute", world.compute),
        ("secrets", world.secrets),
        ("art", world.art),
    ):
        world.servers[name] = await serve(emulator.app())
    world.saturno.base_url = world.url("saturno")
    defaults = {
        "notraining-register-url": world.saturno.register_url,
        "notraining-done-url": world.saturno.done_url,
        "notraining-auth-mode": "jwt",
        "notraining-secret-ref": SECRET_REF,
        "notraining-secretmanager-endpoint": world.url("secrets"),
        "notraining-compute-endpoint": world.url("compute"),
        "notraining-listen-host": "127.0.0.1",
        "notraining-port": "0",
        "notraining-allowed-url-hosts": world.servers["art"].netloc,
        "notraining-shutdown-grace": shutdown_grace,
        "notraining-self-stop": "stop",
    }
    for key, value in {**defaults, **(attributes or {})}.items():
        world.metadata.set_instance_attribute(key, value)
    return world


class AgentProcess:
    """``python -m agent run`` as a subprocess; its JSON log lines are collected as they come."""

    def __init__(
        self, env: Mapping[str, str], *args: str, preexec: Callable[[], None] | None = None
    ) -> None:
        self.env = dict(env)
        self._args = args
        self._preexec = preexec  # runs in the child before exec, e.g. to set an rlimit
        self.lines: list[LogLine] = []
        self.stderr = ""
        self.returncode: int | None = None
        self._process: asyncio.subprocess.Process | None = None
        self._readers: list[asyncio.Task[None]] = []
        self._new_line = asyncio.Condition()
        self.on_line: Callable[[LogLine], None] | None = None

    @property
    def pid(self) -> int:
        """The agent's process id."""
        assert self._process is not None  # noqa: S101 - start() first
        return self._process.pid

    async def start(self) -> None:
        """Start the agent."""
        self._process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "notraining_agent",
            "run",
            *self._args,
            env=self.env,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            preexec_fn=self._preexec,
        )
        assert self._process.stdout is not None  # noqa: S101 - piped above
        assert self._process.stderr is not None  # noqa: S101
        self._readers = [
            asyncio.create_task(self._read_stdout(self._process.stdout)),
            asyncio.create_task(self._read_stderr(self._process.stderr)),
        ]

    async def _read_stdout(self, stream: asyncio.StreamReader) -> None:
        async for raw in stream:
            try:
                line = json.loads(raw)
            except ValueError:
                line = {"message": raw.decode("utf-8", "replace").rstrip(), "severity": "RAW"}
            self.lines.append(line)
            if self.on_line is not None:
                self.on_line(line)
            async with self._new_line:
                self._new_line.notify_all()

    async def _read_stderr(self, stream: asyncio.StreamReader) -> None:
        async for raw in stream:
            self.stderr += raw.decode("utf-8", "replace")

    async def wait_for_log(self, predicate: Callable[[LogLine], bool], timeout: float) -> LogLine:
        """The first log line (already seen or to come) for which ``predicate`` holds."""
        async with asyncio.timeout(timeout), self._new_line:
            while True:
                for line in self.lines:
                    if predicate(line):
                        return line
                if self.returncode is not None or (
                    self._process is not None and self._process.returncode is not None
                ):
                    raise AssertionError(f"agent exited before the log line; stderr: {self.stderr}")
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._new_line.wait(), 0.2)

    def events(self, event: str) -> list[LogLine]:
        """Log lines whose ``event`` field is ``event``."""
        return [line for line in self.lines if line.get("event") == event]

    def send(self, sig: signal.Signals) -> None:
        """Send ``sig`` (SIGTERM to stop it cleanly, SIGKILL to crash it)."""
        if self._process is not None and self._process.returncode is None:
            self._process.send_signal(sig)

    async def wait(self, timeout: float) -> int:
        """Wait for the exit and return its code; SIGKILL it when ``timeout`` passes."""
        assert self._process is not None  # noqa: S101 - start() first
        try:
            self.returncode = await asyncio.wait_for(self._process.wait(), timeout)
        except TimeoutError:
            self._process.kill()
            self.returncode = await self._process.wait()
            raise
        finally:
            await asyncio.wait(self._readers, timeout=5)
        return self.returncode

    async def close(self) -> None:
        """Kill the agent if it still runs."""
        if self._process is not None and self._process.returncode is None:
            self._process.kill()
            await self._process.wait()
        for task in self._readers:
            task.cancel()
