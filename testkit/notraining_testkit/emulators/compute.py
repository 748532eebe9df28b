"""A Compute Engine API fake: the slice of zones/instances and zoneOperations self-stop uses.

The real google-cloud-compute REST clients work against it: with
``client_options={"api_endpoint": "http://127.0.0.1:PORT"}`` the REST transport
keeps the ``http://`` scheme it is given. Plain aiohttp calls work too, so the
boot-time ``testIamPermissions`` check and the stop go through the same fake.

Errors use Google's JSON error shape so ``google.api_core`` maps them to its
exception classes (``Forbidden``, ``InternalServerError``...) as in production.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import time
import uuid
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, Literal

from aiohttp import web

from notraining_testkit.emulators._faults import Faults
from notraining_testkit.emulators._faults import google_error as _error

log = logging.getLogger(__name__)

Operation = Literal[
    "stop", "delete", "get", "test_iam_permissions", "get_operation", "wait_operation"
]
"""The API calls the emulator answers; faults and the call record are keyed by them."""

LIST_PERMISSION = "compute.instances.list"
"""What ``instances.testIamPermissions`` itself needs, on the project, before it answers."""

DEFAULT_WAIT_CAP = 2.0
"""Longest a ``.../operations/{op}/wait`` call blocks (GCE's is 2 minutes; tests want less)."""

_Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
_PREFIX = "/compute/v1/projects/{project}/zones/{zone}"
_INSTANCE = _PREFIX + "/instances/{name}"
_OPERATION = _PREFIX + "/operations/{operation}"
_ids = itertools.count(4_000_000_000_000_000_001)


@dataclass(frozen=True)
class ComputeCall:
    """One request as the emulator received it."""

    operation: Operation
    method: str
    path: str
    query: dict[str, str]
    authorization: str | None
    body: Any
    time: float


@dataclass
class EmulatedInstance:
    """An instance's state: ``RUNNING``, ``STOPPING``, ``TERMINATED``; ``deleted`` once gone."""

    project: str
    zone: str
    name: str
    id: str
    status: str = "RUNNING"
    deleted: bool = False


@dataclass
class EmulatedOperation:
    """A zone operation; ``done`` is set when it reaches ``DONE``."""

    project: str
    zone: str
    name: str
    id: str
    operation_type: str
    instance: EmulatedInstance
    insert_time: float
    done: asyncio.Event = field(default_factory=asyncio.Event)
    error: str | None = None

    @property
    def status(self) -> str:
        """``RUNNING`` until the emulated delay passes, then ``DONE``."""
        return "DONE" if self.done.is_set() else "RUNNING"


class ComputeEmulator(Faults[Operation]):
    """Instances that can be stopped or deleted, operations to poll, IAM answers to steer."""

    def __init__(
        self,
        *,
        expected_token: str | None = None,
        granted_permissions: Iterable[str] | None = None,
        operation_delay: float = 0.0,
        wait_cap: float = DEFAULT_WAIT_CAP,
        auto_create: bool = True,
        on_stop: Callable[[str], None] | None = None,
    ) -> None:
        """``granted_permissions=None`` grants every permission asked for; ``auto_create``
        makes an unknown instance spring into existence ``RUNNING`` on first use."""
        super().__init__()
        self.expected_token = expected_token
        self.granted_permissions = (
            None if granted_permissions is None else frozenset(granted_permissions)
        )
        self.operation_delay = operation_delay
        self.wait_cap = wait_cap
        self.auto_create = auto_create
        self.on_stop = on_stop
        self.operation_error: str | None = None
        """When set, operations end DONE with this error message and change nothing."""
        self.calls: list[ComputeCall] = []
        self.instances: dict[tuple[str, str, str], EmulatedInstance] = {}
        self.operations: dict[str, EmulatedOperation] = {}
        self._timers: list[asyncio.TimerHandle] = []

    # -- steering -----------------------------------------------------------------------

    def add_instance(
        self, project: str, zone: str, name: str, *, status: str = "RUNNING"
    ) -> EmulatedInstance:
        """Create (or replace) an instance in the given state."""
        inst = EmulatedInstance(project, zone, name, str(next(_ids)), status)
        self.instances[(project, zone, name)] = inst
        return inst

    def instance(self, project: str, zone: str, name: str) -> EmulatedInstance | None:
        """The instance's current record, deleted ones included; None if never seen."""
        return self.instances.get((project, zone, name))

    def grant(self, *permissions: str) -> None:
        """Grant exactly these permissions from now on.

        As on GCE, ``testIamPermissions`` answers 403 unless ``compute.instances.list``
        is among them: the caller must be able to list the collection it asks about.
        """
        self.granted_permissions = frozenset(permissions)

    def refuse_permissions(self) -> None:
        """Grant only the list permission: every testIamPermissions answer comes back empty."""
        self.granted_permissions = frozenset({LIST_PERMISSION})

    def grant_all(self) -> None:
        """Grant every permission asked for (the default)."""
        self.granted_permissions = None

    def calls_for(self, operation: Operation) -> list[ComputeCall]:
        """The recorded calls of one kind, oldest first."""
        return [c for c in self.calls if c.operation == operation]

    # -- the app --------------------------------------------------------------------------

    def app(self) -> web.Application:
        """A fresh aiohttp app over this emulator's state."""
        app = web.Application()
        routes: list[tuple[str, str, Operation, _Handler]] = [
            ("POST", _INSTANCE + "/stop", "stop", self._stop),
            ("DELETE", _INSTANCE, "delete", self._delete),
            ("GET", _INSTANCE, "get", self._get),
            ("POST", _INSTANCE + "/testIamPermissions", "test_iam_permissions", self._iam),
            ("GET", _OPERATION, "get_operation", self._get_operation),
            ("POST", _OPERATION + "/wait", "wait_operation", self._wait_operation),
        ]
        for method, path, op, handler in routes:
            app.router.add_route(method, path, self._guarded(op, handler))
        app.on_shutdown.append(self._on_shutdown)
        return app

    async def _on_shutdown(self, app: web.Application) -> None:
        # Release operation waiters too, not only hung calls.
        await super()._on_shutdown(app)
        for timer in self._timers:
            timer.cancel()
        for op in self.operations.values():
            op.done.set()

    def _guarded(self, op: Operation, handler: _Handler) -> _Handler:
        async def guarded(request: web.Request) -> web.StreamResponse:
            body: Any = None
            if request.can_read_body:
                raw = await request.read()
                try:
                    body = await request.json() if raw else None
                except ValueError:
                    body = raw.decode("utf-8", "replace")
            auth = request.headers.get("Authorization")
            self.calls.append(
                ComputeCall(
                    op, request.method, request.path, dict(request.query), auth, body, time.time()
                )
            )
            token = auth[len("Bearer ") :] if auth and auth.startswith("Bearer ") else ""
            if not token or (self.expected_token is not None and token != self.expected_token):
                return _error(401, "Request had invalid authentication credentials.", "authError")
            injected = await self._injected(op, request)
            return injected if injected is not None else await handler(request)

        return guarded

    def _lookup(self, request: web.Request) -> EmulatedInstance | None:
        m = request.match_info
        key = (m["project"], m["zone"], m["name"])
        inst = self.instances.get(key)
        if inst is None and self.auto_create:
            inst = self.add_instance(*key)
        return None if inst is None or inst.deleted else inst

    async def _stop(self, request: web.Request) -> web.StreamResponse:
        return self._change(request, "stop")

    async def _delete(self, request: web.Request) -> web.StreamResponse:
        return self._change(request, "delete")

    def _change(self, request: web.Request, kind: Literal["stop", "delete"]) -> web.Response:
        inst = self._lookup(request)
        if inst is None:
            return _not_found(request)
        was_running = inst.status == "RUNNING"
        if was_running:
            inst.status = "STOPPING"
        op = EmulatedOperation(
            inst.project,
            inst.zone,
            f"operation-{int(time.time() * 1000)}-{uuid.uuid4().hex[:12]}",
            str(next(_ids)),
            kind,
            inst,
            time.time(),
        )
        self.operations[op.name] = op
        loop = asyncio.get_running_loop()
        self._timers.append(loop.call_later(self.operation_delay, self._complete, op))
        if was_running and self.on_stop is not None:
            # GCE signals the guest while the operation still runs; so does the hook.
            loop.call_soon(self._notify, inst.name)
        log.info("instance %s: %s requested", inst.name, kind, extra={"operation": op.name})
        return web.json_response(_operation_json(op, _base(request)))

    def _notify(self, name: str) -> None:
        assert self.on_stop is not None  # noqa: S101 - only scheduled when set
        try:
            self.on_stop(name)
        except Exception:
            log.exception("the on_stop hook failed for instance %s", name)

    def _complete(self, op: EmulatedOperation) -> None:
        op.error = self.operation_error
        if op.error is not None:
            op.instance.status = "RUNNING"  # the stop failed: the VM carries on
        else:
            op.instance.deleted = op.operation_type == "delete"
            op.instance.status = "TERMINATED"
        op.done.set()

    async def _get(self, request: web.Request) -> web.StreamResponse:
        inst = self._lookup(request)
        if inst is None:
            return _not_found(request)
        base = _base(request)
        return web.json_response(
            {
                "kind": "compute#instance",
                "id": inst.id,
                "name": inst.name,
                "status": inst.status,
                "zone": f"{base}/compute/v1/projects/{inst.project}/zones/{inst.zone}",
                "selfLink": _instance_link(base, inst),
            }
        )

    async def _iam(self, request: web.Request) -> web.StreamResponse:
        if self._lookup(request) is None:
            return _not_found(request)
        if self.granted_permissions is not None and LIST_PERMISSION not in self.granted_permissions:
            project = request.match_info["project"]
            message = f"Required '{LIST_PERMISSION}' permission for 'projects/{project}'"
            return _error(403, message, "forbidden")
        try:
            body = await request.json()
        except ValueError:
            body = None
        asked = body.get("permissions", []) if isinstance(body, dict) else []
        granted = [
            p
            for p in asked
            if isinstance(p, str)
            and (self.granted_permissions is None or p in self.granted_permissions)
        ]
        # GCE omits the key when nothing is granted; clients must cope with that.
        return web.json_response({"permissions": granted} if granted else {})

    async def _get_operation(self, request: web.Request) -> web.StreamResponse:
        op = self.operations.get(request.match_info["operation"])
        if op is None:
            return _not_found(request)
        return web.json_response(_operation_json(op, _base(request)))

    async def _wait_operation(self, request: web.Request) -> web.StreamResponse:
        op = self.operations.get(request.match_info["operation"])
        if op is None:
            return _not_found(request)
        # Like GCE: when the cap passes, answer with the operation's current state.
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(op.done.wait(), timeout=self.wait_cap)
        return web.json_response(_operation_json(op, _base(request)))


def _base(request: web.Request) -> str:
    return str(request.url.origin())


def _instance_link(base: str, inst: EmulatedInstance) -> str:
    return f"{base}/compute/v1/projects/{inst.project}/zones/{inst.zone}/instances/{inst.name}"


def _operation_json(op: EmulatedOperation, base: str) -> dict[str, Any]:
    zone = f"{base}/compute/v1/projects/{op.project}/zones/{op.zone}"
    body: dict[str, Any] = {
        "kind": "compute#operation",
        "id": op.id,
        "name": op.name,
        "zone": zone,
        "operationType": op.operation_type,
        "targetLink": _instance_link(base, op.instance),
        "targetId": op.instance.id,
        "status": op.status,
        "progress": 100 if op.done.is_set() else 0,
        "insertTime": _iso(op.insert_time),
        "startTime": _iso(op.insert_time),
        "selfLink": f"{zone}/operations/{op.name}",
    }
    if op.done.is_set():
        body["endTime"] = _iso(time.time())
    if op.error is not None:
        body["error"] = {"errors": [{"code": "EMULATED_FAILURE", "message": op.error}]}
    return body


def _iso(t: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(t)) + ".000-00:00"


def _not_found(request: web.Request) -> web.Response:
    return _error(404, f"The resource '{request.path}' was not found", "notFound")
