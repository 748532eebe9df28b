"""Self-stop through the Compute API: stop or delete, retries, and the operation poll."""

from __future__ import annotations

import logging
import subprocess
import sys
from collections.abc import AsyncIterator
from typing import Any

import pytest
from google.oauth2.credentials import Credentials
from notraining_agent.errors import StopError
from notraining_agent.gce.compute import request_self_stop
from notraining_agent.gce.credentials import TokenSource
from notraining_agent.gce.metadata import MetadataClient
from notraining_agent.util.retry import Clock
from notraining_testkit.emulators._server import RunningServer, serve, served
from notraining_testkit.emulators.compute import ComputeEmulator
from notraining_testkit.emulators.metadata import DEFAULT_ACCESS_TOKEN, MetadataEmulator

P, Z, VM = "proj-1", "us-east1-b", "vm-1"
TOKEN = "fake-token"


class Sleeps(Clock):
    """A clock on real time whose sleeps are recorded instead of waited."""

    def __init__(self) -> None:
        self.delays: list[float] = []

    async def sleep(self, delay: float) -> None:
        self.delays.append(delay)


@pytest.fixture
def emulator() -> ComputeEmulator:
    return ComputeEmulator()


@pytest.fixture
async def server(emulator: ComputeEmulator) -> AsyncIterator[RunningServer]:
    async with served(emulator.app()) as running:
        yield running


async def stop(server: RunningServer, sleeps: Sleeps, **kwargs: Any) -> None:
    """request_self_stop against the emulator, with small bounds unless told otherwise."""
    args: dict[str, Any] = {
        "mode": "stop",
        "project": P,
        "zone": Z,
        "name": VM,
        "endpoint": server.url,
        "credentials": Credentials(token=TOKEN),  # type: ignore[no-untyped-call]
        "timeout": 2.0,
        "wait_timeout": 2.0,
        "clock": sleeps,
    }
    args.update(kwargs)
    await request_self_stop(**args)


async def test_stop_is_requested_and_waited_on_the_same_endpoint(
    emulator: ComputeEmulator, server: RunningServer
) -> None:
    """A stop goes to the emulator with the bearer token and is polled there until DONE."""
    emulator.operation_delay = 0.1
    await stop(server, Sleeps())
    assert emulator.instance(P, Z, VM).status == "TERMINATED"  # type: ignore[union-attr]
    ops = [c.operation for c in emulator.calls]
    assert ops[0] == "stop"
    assert set(ops[1:]) == {"wait_operation"}
    assert {c.authorization for c in emulator.calls} == {f"Bearer {TOKEN}"}


async def test_delete_mode_deletes(emulator: ComputeEmulator, server: RunningServer) -> None:
    """mode='delete' sends DELETE on the instance."""
    await stop(server, Sleeps(), mode="delete")
    assert emulator.calls[0].method == "DELETE"
    assert emulator.instance(P, Z, VM).deleted  # type: ignore[union-attr]


async def test_transient_failures_are_retried(
    emulator: ComputeEmulator, server: RunningServer, caplog: pytest.LogCaptureFixture
) -> None:
    """Two 503 answers are retried with 1 s then 2 s backoff, logged as attempt N of M."""
    emulator.fail(503, operation="stop", times=2)
    sleeps = Sleeps()
    with caplog.at_level(logging.WARNING, logger="notraining_agent.gce.compute"):
        await stop(server, sleeps, wait_timeout=0)
    assert len(emulator.calls_for("stop")) == 3
    assert sleeps.delays == [1.0, 2.0]
    assert "attempt 1 of 3" in caplog.text
    assert "attempt 2 of 3" in caplog.text


async def test_the_agents_token_source_authorises_the_stop(
    emulator: ComputeEmulator, server: RunningServer
) -> None:
    """TokenSource.credentials hand google-cloud-compute the metadata server's token."""
    metadata_emulator = MetadataEmulator()
    async with (
        served(metadata_emulator.app()) as metadata,
        MetadataClient(metadata.netloc) as client,
    ):
        credentials = TokenSource(client).credentials
        await stop(server, Sleeps(), credentials=credentials, wait_timeout=0)
    assert [c.authorization for c in emulator.calls] == [f"Bearer {DEFAULT_ACCESS_TOKEN}"]
    assert metadata_emulator.token_requests == 1


async def test_persistent_500_raises_stop_error(
    emulator: ComputeEmulator, server: RunningServer
) -> None:
    """When every attempt gets a 500, StopError says how many were made and what to check."""
    emulator.fail(500, operation="stop", times=None)
    with pytest.raises(StopError, match="after 3 attempts") as info:
        await stop(server, Sleeps())
    assert "compute.instances.stop" in str(info.value)
    assert server.url in str(info.value)
    assert len(emulator.calls_for("stop")) == 3


async def test_forbidden_is_final(emulator: ComputeEmulator, server: RunningServer) -> None:
    """A 403 raises StopError at once, naming the IAM permission and scopes to check."""
    emulator.fail(403, operation="stop")
    sleeps = Sleeps()
    with pytest.raises(StopError, match="refused") as info:
        await stop(server, sleeps)
    assert "self-stop role" in str(info.value)
    assert "scope" in str(info.value)
    assert len(emulator.calls) == 1
    assert sleeps.delays == []


async def test_hanging_api_times_out(emulator: ComputeEmulator, server: RunningServer) -> None:
    """A Compute API that never answers costs `timeout` per attempt, then StopError."""
    emulator.hang(operation="stop")
    with pytest.raises(StopError, match="after 2 attempts"):
        await stop(server, Sleeps(), attempts=2, timeout=0.2)
    assert len(emulator.calls_for("stop")) == 2


async def test_unreachable_endpoint_raises_stop_error() -> None:
    """Connection refused is retried, then reported as StopError."""
    closed = await serve(ComputeEmulator().app())
    await closed.close()
    with pytest.raises(StopError, match="after 2 attempts"):
        await stop(closed, Sleeps(), attempts=2)


async def test_poll_failure_is_not_fatal(
    emulator: ComputeEmulator, server: RunningServer, caplog: pytest.LogCaptureFixture
) -> None:
    """Once the stop was accepted, a refused poll is logged and the call still returns."""
    emulator.operation_delay = 30
    emulator.fail(403, operation="wait_operation", times=None)
    with caplog.at_level(logging.INFO, logger="notraining_agent.gce.compute"):
        await stop(server, Sleeps())
    assert "cannot poll operation" in caplog.text


async def test_operation_not_done_in_time_returns(
    emulator: ComputeEmulator, server: RunningServer, caplog: pytest.LogCaptureFixture
) -> None:
    """An operation still running after wait_timeout is logged, not waited on forever."""
    emulator.operation_delay = 30
    emulator.wait_cap = 0.05
    with caplog.at_level(logging.WARNING, logger="notraining_agent.gce.compute"):
        await stop(server, Sleeps(), wait_timeout=0.3)
    assert "not done after" in caplog.text
    assert emulator.instance(P, Z, VM).status == "STOPPING"  # type: ignore[union-attr]


async def test_failed_operation_raises_stop_error(
    emulator: ComputeEmulator, server: RunningServer
) -> None:
    """An accepted stop whose operation ends with an error is a StopError quoting it."""
    emulator.operation_error = "instance is protected"
    with pytest.raises(StopError, match="instance is protected"):
        await stop(server, Sleeps())
    assert emulator.instance(P, Z, VM).status == "RUNNING"  # type: ignore[union-attr]


async def test_no_wait_when_wait_timeout_is_zero(
    emulator: ComputeEmulator, server: RunningServer
) -> None:
    """wait_timeout=0 makes the stop request and nothing else."""
    await stop(server, Sleeps(), wait_timeout=0)
    assert [c.operation for c in emulator.calls] == ["stop"]


def test_importing_the_module_does_not_load_compute_v1() -> None:
    """Boot stays light: importing gce.compute leaves google.cloud.compute_v1 unloaded."""
    code = (
        "import sys, notraining_agent.gce.compute; print('google.cloud.compute_v1' in sys.modules)"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    )
    assert out.stdout.strip() == "False"
