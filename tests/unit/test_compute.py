"""Self-stop through the Compute API, and the boot-time check that it is allowed."""

from __future__ import annotations

import logging
import subprocess
import sys
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from google.oauth2.credentials import Credentials
from notraining_agent.errors import StopError
from notraining_agent.gce.compute import can_self_stop, request_self_stop
from notraining_agent.util.retry import Clock
from notraining_testkit.emulators._server import RunningServer, serve, served
from notraining_testkit.emulators.compute import ComputeEmulator

P, Z, VM = "proj-1", "us-east1-b", "vm-1"
TOKEN = "fake-token"
CLOUD = ["https://www.googleapis.com/auth/cloud-platform"]


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


async def check(
    server: RunningServer, session: aiohttp.ClientSession, **kwargs: Any
) -> bool | None:
    """can_self_stop against the emulator, with a cloud-platform scope unless told otherwise."""

    async def token() -> str:
        return TOKEN

    args: dict[str, Any] = {
        "mode": "stop",
        "project": P,
        "zone": Z,
        "name": VM,
        "endpoint": server.url,
        "token": token,
        "session": session,
        "scopes": CLOUD,
        "timeout": 2.0,
    }
    args.update(kwargs)
    return await can_self_stop(**args)


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


async def test_can_self_stop_when_granted(
    emulator: ComputeEmulator, server: RunningServer, session: aiohttp.ClientSession
) -> None:
    """Granted compute.instances.stop answers True; the call carries the bearer token."""
    assert await check(server, session)
    (call,) = emulator.calls
    assert call.operation == "test_iam_permissions"
    assert call.body == {"permissions": ["compute.instances.stop"]}
    assert call.authorization == f"Bearer {TOKEN}"


@pytest.mark.parametrize(
    ("mode", "permission"),
    [
        ("delete", "compute.instances.delete"),
        ("poweroff", "compute.instances.stop"),
        ("none", "compute.instances.stop"),
    ],
)
async def test_can_self_stop_asks_the_mode_permission(
    emulator: ComputeEmulator,
    server: RunningServer,
    session: aiohttp.ClientSession,
    mode: str,
    permission: str,
) -> None:
    """delete asks for compute.instances.delete; poweroff and none ask for stop."""
    emulator.grant(permission)
    assert await check(server, session, mode=mode)
    assert emulator.calls[0].body == {"permissions": [permission]}


async def test_can_self_stop_false_when_refused(
    emulator: ComputeEmulator, server: RunningServer, session: aiohttp.ClientSession
) -> None:
    """No permission granted (the answer has no permissions key) is False."""
    emulator.grant("compute.instances.delete")
    assert not await check(server, session)


@pytest.mark.parametrize(
    "kwargs",
    [
        {"scopes": ["https://www.googleapis.com/auth/compute.readonly"]},
        {"scopes": []},
        {"project": ""},
        {"mode": "reboot"},
    ],
)
async def test_can_self_stop_false_without_calling(
    emulator: ComputeEmulator,
    server: RunningServer,
    session: aiohttp.ClientSession,
    kwargs: dict[str, Any],
) -> None:
    """Missing scope, local mode or an unknown mode answer False without any API call."""
    assert not await check(server, session, **kwargs)
    assert emulator.calls == []


async def test_can_self_stop_accepts_compute_scope(
    server: RunningServer, session: aiohttp.ClientSession
) -> None:
    """The compute scope is enough, without cloud-platform."""
    assert await check(server, session, scopes=["https://www.googleapis.com/auth/compute"])


async def test_can_self_stop_unknown_on_errors(
    emulator: ComputeEmulator, server: RunningServer, session: aiohttp.ClientSession
) -> None:
    """A 500, a hang past the timeout, a failing token and a dead endpoint answer None."""
    emulator.fail(500)
    assert await check(server, session) is None
    emulator.hang()
    assert await check(server, session, timeout=0.2) is None
    emulator.clear_faults()

    async def broken_token() -> str:
        raise RuntimeError("metadata server down")

    assert await check(server, session, token=broken_token) is None
    closed = await serve(ComputeEmulator().app())
    await closed.close()
    assert await check(closed, session) is None


def forbidding(message: str) -> web.Application:
    """A Compute endpoint whose testIamPermissions answers 403 as GCE does, with ``message``."""

    async def refuse(request: web.Request) -> web.Response:
        await request.read()
        error = {"message": message, "domain": "global", "reason": "forbidden"}
        body = {"error": {"code": 403, "message": message, "errors": [error]}}
        return web.json_response(body, status=403)

    app = web.Application()
    app.router.add_post(
        f"/compute/v1/projects/{P}/zones/{Z}/instances/{VM}/testIamPermissions", refuse
    )
    return app


async def test_can_self_stop_unknown_without_the_list_permission(
    session: aiohttp.ClientSession, caplog: pytest.LogCaptureFixture
) -> None:
    """GCE's 403 for a caller without compute.instances.list (the module's role) is None,
    logged at INFO: the check could not be made, the stop may still work."""
    caplog.set_level(logging.INFO, logger="notraining_agent.gce.compute")
    async with served(
        forbidding(f"Required 'compute.instances.list' permission for 'projects/{P}'")
    ) as running:
        assert await check(running, session) is None
    (record,) = [r for r in caplog.records if "compute.instances.list" in r.getMessage()]
    assert record.levelno == logging.INFO
    assert all(r.levelno < logging.WARNING for r in caplog.records)


async def test_can_self_stop_unknown_on_another_403_warns(
    session: aiohttp.ClientSession, caplog: pytest.LogCaptureFixture
) -> None:
    """Any other 403 (API disabled, say) is None too, with a warning that quotes GCE."""
    async with served(forbidding("Compute Engine API has not been used in project 1")) as running:
        assert await check(running, session) is None
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert any("has not been used" in m for m in warnings), warnings
