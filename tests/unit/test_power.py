"""Stopping the VM: Compute API first (real client, emulated API), systemctl as fallback."""

from __future__ import annotations

import logging
import os
import stat
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from google.oauth2.credentials import Credentials
from notraining_agent.config import Settings
from notraining_agent.errors import EXIT_OK, EXIT_STOP_FAILED, StopError
from notraining_agent.gce import InstanceInfo, compute
from notraining_agent.host import power as shutdown
from notraining_agent.host.power import EXIT_POWERS_OFF_ENV, exit_powers_off, stop_vm
from notraining_agent.util.retry import Backoff
from notraining_testkit.emulators._server import RunningServer, serve
from notraining_testkit.emulators.compute import ComputeEmulator

from tests import fakes

P, Z, VM = "proj-1", "us-east1-b", "vm-1"
TOKEN = "fake-token"


def instance(**overrides: Any) -> InstanceInfo:
    """The VM these tests stop (no external IP), from the shared builder."""
    values: dict[str, Any] = {"name": VM, "project": P, "zone": Z, "instance_id": "1234"}
    return fakes.instance(**{**values, "internal_ip": "10.0.0.2", "external_ip": None, **overrides})


def credentials() -> Credentials:
    return Credentials(token=TOKEN)  # type: ignore[no-untyped-call]


@pytest.fixture
def emulator() -> ComputeEmulator:
    return ComputeEmulator(expected_token=TOKEN)


@pytest.fixture
async def server(emulator: ComputeEmulator) -> AsyncIterator[RunningServer]:
    running = await serve(emulator.app())
    yield running
    await running.close()


@pytest.fixture(autouse=True)
def fast_retries(monkeypatch: pytest.MonkeyPatch) -> None:
    """Keep the Compute client's retry pauses to milliseconds."""
    monkeypatch.setattr(compute, "STOP_BACKOFF", Backoff(initial=0.01, cap=0.02, jitter=False))


class FakeSystemctl:
    """A ``systemctl`` script first on PATH that records its arguments and exits as told."""

    def __init__(self, folder: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        self.folder = folder
        self.calls_file = folder / "calls"
        self.exit_code = 0
        monkeypatch.setenv("PATH", f"{folder}{os.pathsep}{os.environ.get('PATH', '')}")
        self._write()

    def _write(self) -> None:
        script = self.folder / "systemctl"
        script.write_text(
            f'#!/bin/sh\necho "$@" >> "{self.calls_file}"\n'
            f'echo "systemctl said no" >&2\nexit {self.exit_code}\n',
            encoding="utf-8",
        )
        script.chmod(script.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)

    def fail_with(self, code: int) -> None:
        self.exit_code = code
        self._write()

    @property
    def calls(self) -> list[str]:
        if not self.calls_file.exists():
            return []
        return self.calls_file.read_text(encoding="utf-8").splitlines()


@pytest.fixture
def systemctl(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> FakeSystemctl:
    folder = tmp_path / "bin"
    folder.mkdir()
    return FakeSystemctl(folder, monkeypatch)


def settings(mode: str, server: RunningServer | None = None) -> Settings:
    endpoint = server.url if server is not None else "http://127.0.0.1:9"
    return Settings(self_stop=mode, compute_endpoint=endpoint)  # type: ignore[arg-type]


async def test_none_only_logs(
    emulator: ComputeEmulator, server: RunningServer, systemctl: FakeSystemctl
) -> None:
    """self_stop none exits 0 without asking anyone."""
    assert await stop_vm(settings("none", server), instance(), credentials) == EXIT_OK
    assert emulator.calls == []
    assert systemctl.calls == []


async def test_stop_through_the_compute_api(
    emulator: ComputeEmulator, server: RunningServer, systemctl: FakeSystemctl
) -> None:
    """self_stop stop asks the Compute API (real client) to stop this instance, then exits 0."""
    assert await stop_vm(settings("stop", server), instance(), credentials) == EXIT_OK
    (call,) = emulator.calls_for("stop")
    assert call.method == "POST"
    assert call.path == f"/compute/v1/projects/{P}/zones/{Z}/instances/{VM}/stop"
    assert call.authorization == f"Bearer {TOKEN}"
    inst = emulator.instance(P, Z, VM)
    assert inst is not None
    assert inst.status == "TERMINATED"
    assert systemctl.calls == []


async def test_delete_through_the_compute_api(
    emulator: ComputeEmulator, server: RunningServer, systemctl: FakeSystemctl
) -> None:
    """self_stop delete sends DELETE for this instance, then exits 0."""
    assert await stop_vm(settings("delete", server), instance(), credentials) == EXIT_OK
    (call,) = emulator.calls_for("delete")
    assert call.method == "DELETE"
    assert call.path == f"/compute/v1/projects/{P}/zones/{Z}/instances/{VM}"
    inst = emulator.instance(P, Z, VM)
    assert inst is not None
    assert inst.deleted
    assert systemctl.calls == []


@pytest.mark.parametrize("status", [403, 503])
async def test_api_failure_on_gce_falls_back_to_poweroff(
    emulator: ComputeEmulator, server: RunningServer, systemctl: FakeSystemctl, status: int
) -> None:
    """When the API refuses (or keeps failing), a GCE VM runs ``systemctl poweroff``: exit 0."""
    emulator.fail(status, operation="stop", times=None)
    assert await stop_vm(settings("stop", server), instance(), credentials) == EXIT_OK
    assert systemctl.calls == ["poweroff"]
    assert len(emulator.calls_for("stop")) == (1 if status == 403 else 3)


async def test_failed_poweroff_exits_3(
    emulator: ComputeEmulator, server: RunningServer, systemctl: FakeSystemctl
) -> None:
    """API refused and systemctl exiting 1: nothing worked, exit 3."""
    emulator.fail(403, operation="stop", times=None)
    systemctl.fail_with(1)
    assert await stop_vm(settings("stop", server), instance(), credentials) == EXIT_STOP_FAILED
    assert systemctl.calls == ["poweroff"]


async def test_off_gce_api_failure_exits_3_without_poweroff(
    emulator: ComputeEmulator, server: RunningServer, systemctl: FakeSystemctl
) -> None:
    """Not on GCE, a failed API stop does not power off the machine: exit 3."""
    emulator.fail(403, operation="stop", times=None)
    code = await stop_vm(settings("stop", server), instance(on_gce=False), credentials)
    assert code == EXIT_STOP_FAILED
    assert systemctl.calls == []


async def test_no_credentials_on_gce_falls_back(
    emulator: ComputeEmulator, server: RunningServer, systemctl: FakeSystemctl
) -> None:
    """Without service-account credentials the API is not tried; GCE falls back to poweroff."""
    assert await stop_vm(settings("stop", server), instance(), None) == EXIT_OK
    assert emulator.calls == []
    assert systemctl.calls == ["poweroff"]


async def test_no_project_or_zone_off_gce_exits_3(
    systemctl: FakeSystemctl,
) -> None:
    """Local mode with self_stop forced to stop (no project, zone) cannot stop: exit 3."""
    local = instance(on_gce=False, project=None, zone=None)
    assert await stop_vm(settings("stop"), local, credentials) == EXIT_STOP_FAILED
    assert systemctl.calls == []


async def test_poweroff_mode_runs_systemctl(
    emulator: ComputeEmulator, server: RunningServer, systemctl: FakeSystemctl
) -> None:
    """self_stop poweroff runs ``systemctl poweroff`` from PATH and never calls the API."""
    assert await stop_vm(settings("poweroff", server), instance(), credentials) == EXIT_OK
    assert systemctl.calls == ["poweroff"]
    assert emulator.calls == []


async def test_missing_systemctl_exits_3() -> None:
    """No systemctl on PATH: poweroff is impossible, exit 3."""
    code = await stop_vm(settings("poweroff"), instance(), None, which=lambda _name: None)
    assert code == EXIT_STOP_FAILED


async def test_poweroff_reports_the_exit_code(systemctl: FakeSystemctl) -> None:
    """poweroff() raises a StopError naming systemctl's exit code and output."""
    systemctl.fail_with(4)
    with pytest.raises(StopError, match=r"exited 4 \(systemctl said no\)"):
        await shutdown.poweroff()


async def test_poweroff_under_the_unit_exits_0_and_leaves_it_to_systemd(
    emulator: ComputeEmulator,
    server: RunningServer,
    systemctl: FakeSystemctl,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Under the unit, self_stop poweroff ends cleanly with an INFO line, no systemctl."""
    caplog.set_level(logging.INFO, logger="notraining_agent.host.power")
    code = await stop_vm(
        settings("poweroff", server), instance(), credentials, systemd_powers_off=True
    )
    assert code == EXIT_OK
    assert systemctl.calls == []
    assert emulator.calls == []
    (record,) = [r for r in caplog.records if "unit powers the VM off" in r.getMessage()]
    assert record.levelno == logging.INFO
    assert all(r.levelno < logging.WARNING for r in caplog.records)


async def test_api_failure_under_the_unit_falls_back_to_systemd(
    emulator: ComputeEmulator, server: RunningServer, systemctl: FakeSystemctl
) -> None:
    """A refused API stop on GCE, under the unit, still ends in a clean exit 0: PID 1 powers off."""
    emulator.fail(403, operation="stop", times=None)
    code = await stop_vm(settings("stop", server), instance(), credentials, systemd_powers_off=True)
    assert code == EXIT_OK
    assert systemctl.calls == []


async def test_refused_poweroff_outside_the_unit_is_critical(
    systemctl: FakeSystemctl, caplog: pytest.LogCaptureFixture
) -> None:
    """Outside the unit, a refused ``systemctl poweroff`` is a real failure: CRITICAL, exit 3."""
    systemctl.fail_with(1)
    code = await stop_vm(settings("poweroff"), instance(), None)
    assert code == EXIT_STOP_FAILED
    assert systemctl.calls == ["poweroff"]
    assert [r.levelno for r in caplog.records if "could not be stopped" in r.getMessage()] == [
        logging.CRITICAL
    ]


@pytest.mark.parametrize(
    ("environ", "expected"),
    [
        ({EXIT_POWERS_OFF_ENV: "1", "INVOCATION_ID": "0f1e2d"}, True),
        ({EXIT_POWERS_OFF_ENV: "1"}, False),
        ({EXIT_POWERS_OFF_ENV: "0", "INVOCATION_ID": "0f1e2d"}, False),
        ({"INVOCATION_ID": "0f1e2d"}, False),
        ({}, False),
    ],
)
def test_exit_powers_off_needs_the_unit_and_systemd(
    environ: dict[str, str], expected: bool
) -> None:
    """Only a systemd service whose unit sets the variable to 1 counts as powered off by PID 1."""
    assert exit_powers_off(environ) is expected
