"""The Compute API emulator, driven by the real google-cloud-compute clients and by aiohttp."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest
from google.api_core import exceptions as core
from google.auth.exceptions import RefreshError
from google.cloud import compute_v1
from google.oauth2.credentials import Credentials
from notraining_testkit.emulators._server import RunningServer, serve, served
from notraining_testkit.emulators.compute import ComputeEmulator

P, Z, VM = "proj-1", "us-east1-b", "vm-1"
TOKEN = "fake-token"
INSTANCE_PATH = f"/compute/v1/projects/{P}/zones/{Z}/instances/{VM}"


@pytest.fixture
def emulator() -> ComputeEmulator:
    return ComputeEmulator()


@pytest.fixture
async def server(emulator: ComputeEmulator) -> AsyncIterator[RunningServer]:
    async with served(emulator.app()) as running:
        yield running


def clients(server: RunningServer, token: str = TOKEN) -> tuple[Any, Any]:
    """The real REST clients, pointed at the emulator over plain http."""
    creds = Credentials(token=token)  # type: ignore[no-untyped-call]
    options = {"api_endpoint": server.url}
    return (
        compute_v1.InstancesClient(credentials=creds, client_options=options),
        compute_v1.ZoneOperationsClient(credentials=creds, client_options=options),
    )


async def test_real_client_stops_and_polls(
    emulator: ComputeEmulator, server: RunningServer
) -> None:
    """A stop through InstancesClient returns an operation that ZoneOperationsClient sees DONE."""
    emulator.operation_delay = 0.2
    instances, operations = clients(server)
    op = await asyncio.to_thread(instances.stop_unary, project=P, zone=Z, instance=VM)
    assert op.status == compute_v1.Operation.Status.RUNNING
    assert op.operation_type == "stop"
    assert op.target_link.endswith(INSTANCE_PATH)
    assert emulator.instance(P, Z, VM).status == "STOPPING"  # type: ignore[union-attr]
    done = await asyncio.to_thread(operations.wait, project=P, zone=Z, operation=op.name)
    assert done.status == compute_v1.Operation.Status.DONE
    got = await asyncio.to_thread(operations.get, project=P, zone=Z, operation=op.name)
    assert got.status == compute_v1.Operation.Status.DONE
    inst = await asyncio.to_thread(instances.get, project=P, zone=Z, instance=VM)
    assert inst.status == "TERMINATED"
    assert [c.operation for c in emulator.calls] == [
        "stop",
        "wait_operation",
        "get_operation",
        "get",
    ]
    assert {c.authorization for c in emulator.calls} == {"Bearer fake-token"}


async def test_real_client_deletes(emulator: ComputeEmulator, server: RunningServer) -> None:
    """A delete removes the instance once its operation is done: a later get is NotFound."""
    instances, operations = clients(server)
    op = await asyncio.to_thread(instances.delete_unary, project=P, zone=Z, instance=VM)
    assert op.operation_type == "delete"
    await asyncio.to_thread(operations.wait, project=P, zone=Z, operation=op.name)
    assert emulator.instance(P, Z, VM).deleted  # type: ignore[union-attr]
    with pytest.raises(core.NotFound):
        await asyncio.to_thread(instances.get, project=P, zone=Z, instance=VM)


async def test_extended_operation_name_is_ours(server: RunningServer) -> None:
    """The non-unary stop also parses the emulator's operation JSON."""
    instances, _ = clients(server)
    op = await asyncio.to_thread(instances.stop, project=P, zone=Z, instance=VM)
    assert op.name.startswith("operation-")


async def test_real_client_iam_and_refusal(
    emulator: ComputeEmulator, server: RunningServer
) -> None:
    """testIamPermissions grants all by default, a chosen set after grant(), none when refused,
    and is Forbidden, as on GCE, to a caller that may not list instances."""
    instances, _ = clients(server)
    req = compute_v1.TestPermissionsRequest(permissions=["compute.instances.stop", "x.y"])

    def ask() -> list[str]:
        resp = instances.test_iam_permissions(
            project=P, zone=Z, resource=VM, test_permissions_request_resource=req
        )
        return list(resp.permissions)

    assert await asyncio.to_thread(ask) == ["compute.instances.stop", "x.y"]
    emulator.grant("compute.instances.list", "compute.instances.stop")
    assert await asyncio.to_thread(ask) == ["compute.instances.stop"]
    emulator.grant("compute.instances.stop")
    with pytest.raises(core.Forbidden, match=r"Required 'compute\.instances\.list' permission"):
        await asyncio.to_thread(ask)
    emulator.refuse_permissions()
    assert await asyncio.to_thread(ask) == []
    emulator.grant_all()
    assert len(await asyncio.to_thread(ask)) == 2
    assert emulator.calls_for("test_iam_permissions")[0].body == {
        "permissions": ["compute.instances.stop", "x.y"]
    }


async def test_faults_map_to_api_core_errors(
    emulator: ComputeEmulator, server: RunningServer
) -> None:
    """Injected 403 and 500 reach the client as Forbidden and InternalServerError, then clear."""
    instances, _ = clients(server)
    emulator.fail(403, operation="stop")
    with pytest.raises(core.Forbidden):
        await asyncio.to_thread(instances.stop_unary, project=P, zone=Z, instance=VM)
    emulator.fail(500, times=2)
    for _ in range(2):
        with pytest.raises(core.InternalServerError):
            await asyncio.to_thread(instances.get, project=P, zone=Z, instance=VM)
    inst = await asyncio.to_thread(instances.get, project=P, zone=Z, instance=VM)
    assert inst.status == "RUNNING"


async def test_wrong_token_is_401() -> None:
    """With an expected token set, another bearer token is refused with 401."""
    # google-auth answers a 401 by refreshing the token; static test credentials
    # cannot refresh, so the client gives up with RefreshError after one call.
    emulator = ComputeEmulator(expected_token="right")
    async with served(emulator.app()) as running:
        instances, _ = clients(running, token="wrong")
        with pytest.raises(RefreshError):
            await asyncio.to_thread(instances.get, project=P, zone=Z, instance=VM)
        assert [c.authorization for c in emulator.calls] == ["Bearer wrong"]


async def test_plain_http_needs_bearer(emulator: ComputeEmulator, server: RunningServer) -> None:
    """A call without Authorization is recorded and answered 401 in Google's error shape."""
    async with (
        aiohttp.ClientSession() as session,
        session.get(server.url + INSTANCE_PATH) as resp,
    ):
        body = await resp.json()
    assert resp.status == 401
    assert body["error"]["code"] == 401
    assert emulator.calls[0].authorization is None


async def test_iam_omits_key_when_nothing_granted(
    emulator: ComputeEmulator, server: RunningServer
) -> None:
    """Like GCE, an answer granting nothing has no ``permissions`` key at all."""
    emulator.refuse_permissions()
    async with (
        aiohttp.ClientSession() as session,
        session.post(
            server.url + INSTANCE_PATH + "/testIamPermissions",
            json={"permissions": ["compute.instances.stop"]},
            headers={"Authorization": "Bearer t"},
        ) as resp,
    ):
        assert await resp.json() == {}


async def test_hang_is_released_on_close(emulator: ComputeEmulator) -> None:
    """A hanging call never answers while the server runs, and close() does not wait for it:
    closing releases it with the emulator's own 503, which a call cut off when the server's
    shutdown grace ran out would never get."""
    running = await serve(emulator.app())
    emulator.hang(operation="stop")
    async with aiohttp.ClientSession() as session:
        call = asyncio.ensure_future(
            session.post(
                running.url + INSTANCE_PATH + "/stop", headers={"Authorization": "Bearer t"}
            )
        )
        while not emulator.calls_for("stop"):  # noqa: ASYNC110 - the record has no event
            await asyncio.sleep(0.01)
        assert not call.done()
        await running.close()
        async with await call as resp:
            assert resp.status == 503
            assert "shutting down" in (await resp.json())["error"]["message"]
    assert emulator.calls_for("stop")


async def test_on_stop_hook_and_unknown_instance() -> None:
    """on_stop gets the instance name once; without auto_create an unknown VM is 404."""
    stopped: list[str] = []
    emulator = ComputeEmulator(auto_create=False, on_stop=stopped.append)
    emulator.add_instance(P, Z, VM)
    async with served(emulator.app()) as running:
        instances, _ = clients(running)
        await asyncio.to_thread(instances.stop_unary, project=P, zone=Z, instance=VM)
        await asyncio.sleep(0.05)
        assert stopped == [VM]
        await asyncio.to_thread(instances.stop_unary, project=P, zone=Z, instance=VM)
        await asyncio.sleep(0.05)
        assert stopped == [VM]  # already terminated: no second signal
        with pytest.raises(core.NotFound):
            await asyncio.to_thread(instances.stop_unary, project=P, zone=Z, instance="other")
