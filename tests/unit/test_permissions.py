"""gce.permissions: can_self_stop asks testIamPermissions, and says "unknown" honestly."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from notraining_agent.gce.permissions import can_self_stop
from notraining_testkit.emulators._server import RunningServer, serve, served
from notraining_testkit.emulators.compute import ComputeEmulator

P, Z, VM = "proj-1", "us-east1-b", "vm-1"
TOKEN = "fake-token"
CLOUD = ["https://www.googleapis.com/auth/cloud-platform"]
LIST = "compute.instances.list"
"""Without it testIamPermissions answers 403 (on GCE and in the emulator)."""


@pytest.fixture
def emulator() -> ComputeEmulator:
    return ComputeEmulator()


@pytest.fixture
async def server(emulator: ComputeEmulator) -> AsyncIterator[RunningServer]:
    async with served(emulator.app()) as running:
        yield running


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
    emulator.grant(LIST, permission)
    assert await check(server, session, mode=mode)
    assert emulator.calls[0].body == {"permissions": [permission]}


async def test_can_self_stop_false_when_refused(
    emulator: ComputeEmulator, server: RunningServer, session: aiohttp.ClientSession
) -> None:
    """No permission granted (the answer has no permissions key) is False."""
    emulator.grant(LIST, "compute.instances.delete")
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
    emulator: ComputeEmulator,
    server: RunningServer,
    session: aiohttp.ClientSession,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """GCE's 403 for a caller without compute.instances.list (the module's role: stop, not
    list) is None, logged at INFO: the check could not be made, the stop may still work."""
    caplog.set_level(logging.INFO, logger="notraining_agent.gce.permissions")
    emulator.grant("compute.instances.stop")
    assert await check(server, session) is None
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
