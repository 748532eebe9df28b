"""A GCE metadata server on loopback, close enough that the real google-auth works against it.

What it copies from the real server (checked against Google's own emulator tests):
``Metadata-Flavor: Google`` required (403 otherwise, and for any ``X-Forwarded-For``);
every answer carries ``Metadata-Flavor``, ``Server`` and an ``ETag``; leaves answer
``application/text``; directories list their children (``/`` after sub-directories) and
answer camelCase JSON with ``recursive=true``; ``wait_for_change`` long polls against
``last_etag``; ``service-accounts/*/token`` and ``identity`` are generated, never listed
in recursive JSON. Steering methods are plain calls made from the event loop's thread.
The tree itself and the forms it is served in live in :mod:`._metadata_tree`.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass

from aiohttp import web

from notraining_testkit.emulators._metadata_tree import (
    VERBATIM,
    Endpoint,
    Node,
    build_tree,
    etag_of,
    identity_token,
    listing,
    lookup,
    to_json,
    to_text,
)

FLAVOR = "Metadata-Flavor"
GOOGLE = "Google"
TEXT = "application/text"
DEFAULT_ACCESS_TOKEN = "ya29.emulator-access-token-for-tests"
DEFAULT_IDENTITY_KEY = b"notraining-metadata-emulator-identity-signing-key"
DEFAULT_SCOPES = (
    "https://www.googleapis.com/auth/cloud-platform",
    "https://www.googleapis.com/auth/userinfo.email",
)
DEFAULT_WATCH_TIMEOUT = 300.0  # the server's own cap when the client names no timeout_sec

_Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@dataclass(frozen=True)
class RecordedRequest:
    """One request as the emulator saw it, for assertions."""

    method: str
    path: str
    query: Mapping[str, str]
    headers: Mapping[str, str]
    body: str


class MetadataEmulator:
    """The metadata server of one VM; build the app with :meth:`app`, steer it with methods."""

    def __init__(
        self,
        *,
        project_id: str = "demo-project",
        numeric_project_id: int = 123456789012,
        zone: str = "us-east1-b",
        name: str = "notraining-vm-1",
        instance_id: int = 4518373217654321234,
        machine_type: str = "e2-standard-4",
        internal_ip: str = "10.142.0.2",
        external_ip: str | None = "203.0.113.10",
        service_account_email: str | None = None,
        service_account: bool = True,
        scopes: tuple[str, ...] = DEFAULT_SCOPES,
        access_token: str = DEFAULT_ACCESS_TOKEN,
        token_lifetime: int = 3599,
        instance_attributes: Mapping[str, str] | None = None,
        project_attributes: Mapping[str, str] | None = None,
        preempted: bool = False,
        preemptible: bool = False,
        identity_key: bytes = DEFAULT_IDENTITY_KEY,
    ) -> None:
        self.project_id = project_id
        self.numeric_project_id = numeric_project_id
        self.zone = zone
        self.name = name
        self.instance_id = instance_id
        self.machine_type = machine_type
        self.internal_ip = internal_ip
        self.external_ip = external_ip
        self.service_account_email = (
            service_account_email or f"{numeric_project_id}-compute@developer.gserviceaccount.com"
        )
        self.service_account = service_account
        self.scopes = tuple(scopes)
        self.access_token = access_token
        self.token_lifetime = token_lifetime
        self.identity_key = identity_key
        self.preemptible = preemptible
        self.instance_attributes: dict[str, str] = dict(instance_attributes or {})
        self.project_attributes: dict[str, str] = dict(project_attributes or {})
        self.guest_attributes_enabled = True
        self.requests: list[RecordedRequest] = []
        self.token_requests = 0
        self._preempted = preempted
        self._maintenance_event = "NONE"
        self._guest: dict[str, dict[str, str]] = {}
        self._guest_history: dict[str, list[str]] = {}
        self._down: str | None = None
        self._changed = asyncio.Event()
        self._watchers: dict[int, web.Request] = {}  # by id(): aiohttp requests are unhashable
        self._dropped: set[int] = set()

    # -- steering -------------------------------------------------------------------------

    def set_instance_attribute(self, key: str, value: str) -> None:
        """Add or change an instance attribute, waking every watcher."""
        self.instance_attributes[key] = value
        self._notify()

    def delete_instance_attribute(self, key: str) -> None:
        """Remove an instance attribute (absent is fine), waking every watcher."""
        self.instance_attributes.pop(key, None)
        self._notify()

    def set_project_attribute(self, key: str, value: str) -> None:
        """Add or change a project attribute, waking every watcher."""
        self.project_attributes[key] = value
        self._notify()

    def set_preempted(self, preempted: bool) -> None:
        """Flip ``instance/preempted`` the way GCE does when it reclaims a spot VM."""
        self._preempted = preempted
        self._notify()

    def set_maintenance_event(self, event: str) -> None:
        """Set ``instance/maintenance-event`` (``NONE``, ``MIGRATE_ON_HOST_MAINTENANCE``...)."""
        self._maintenance_event = event
        self._notify()

    def set_down(self, down: bool, *, reset: bool = False) -> None:
        """While down, answer 503 (or, with ``reset``, drop each connection unanswered)."""
        self._down = ("reset" if reset else "503") if down else None

    def drop_watches(self) -> int:
        """Abort every hanging ``wait_for_change`` connection; return how many were cut."""
        for key, request in self._watchers.items():
            self._dropped.add(key)
            if request.transport is not None:
                request.transport.close()
        self._notify()
        return len(self._watchers)

    def guest_attribute(self, key: str) -> str | None:
        """The current value of guest attribute ``namespace/key``."""
        namespace, _, name = key.partition("/")
        return self._guest.get(namespace, {}).get(name)

    def guest_attribute_history(self, key: str) -> list[str]:
        """Every value written to guest attribute ``namespace/key``, oldest first."""
        return list(self._guest_history.get(key, []))

    def requests_for(self, path: str) -> list[RecordedRequest]:
        """Recorded requests whose path is ``path`` (e.g. ``/computeMetadata/v1/``)."""
        return [r for r in self.requests if r.path == path]

    def _notify(self) -> None:
        self._changed.set()
        self._changed = asyncio.Event()

    # -- the data -------------------------------------------------------------------------

    def tree(self) -> dict[str, Node]:
        """The whole metadata tree as the server would serve it now."""
        return build_tree(
            self,
            preempted=self._preempted,
            maintenance_event=self._maintenance_event,
            guest=self._guest,
        )

    def _lookup(self, segments: list[str]) -> Node | None:
        return lookup(self.tree(), segments)

    # -- HTTP -----------------------------------------------------------------------------

    def app(self) -> web.Application:
        """The aiohttp application; serve it with ``notraining_testkit.emulators._server.serve``."""
        app = web.Application(middlewares=[self._middleware])
        app.router.add_route("*", "/{tail:.*}", self._handle)
        return app

    @web.middleware
    async def _middleware(self, request: web.Request, handler: _Handler) -> web.StreamResponse:
        body = await request.text() if request.can_read_body else ""
        query, headers = dict(request.query), request.headers.copy()  # case-insensitive
        self.requests.append(RecordedRequest(request.method, request.path, query, headers, body))
        try:
            self._admit(request)
            response = await handler(request)
        except _Refused as refused:
            html = f"<!DOCTYPE html>\n<html><body><p><b>{refused.status}.</b> {refused}</p>\n"
            response = _answer(html, "text/html", status=refused.status)
        response.headers[FLAVOR] = GOOGLE
        response.headers["Server"] = "Metadata Server for VM"
        return response

    def _admit(self, request: web.Request) -> None:
        """Refuse what the real server refuses before looking at the path."""
        if self._down == "reset" and request.transport is not None:
            request.transport.close()
        if self._down is not None:
            raise _Refused(503, "The metadata server is not ready yet.")
        if request.headers.get(FLAVOR) != GOOGLE:
            raise _Refused(403, "Missing Metadata-Flavor:Google header.")
        if "X-Forwarded-For" in request.headers:
            raise _Refused(403, "Request had an X-Forwarded-For header and was refused.")

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        segments = [s for s in request.path.split("/") if s]
        if segments[:2] != ["computeMetadata", "v1"]:
            return _answer(_root_listing(segments), TEXT)
        segments = segments[2:]
        if segments[:2] == ["instance", "guest-attributes"] and request.method in ("PUT", "DELETE"):
            return await self._write_guest(request, segments[2:])
        node = self._lookup(segments)
        if isinstance(node, Endpoint) and not request.path.endswith("/"):
            return self._endpoint(request, node)
        if node is None or isinstance(node, Endpoint):
            raise _Refused(404, "The requested URL was not found on this server.")
        if request.method != "GET":
            raise _Refused(405, "Method not allowed.")
        return await self._get(request, segments, node)

    async def _get(self, request: web.Request, segments: list[str], node: Node) -> web.Response:
        query = request.query
        recursive = query.get("recursive", "").lower() == "true"
        is_dir = isinstance(node, dict | list)
        if not is_dir and request.path.endswith("/"):
            raise _Refused(404, "A leaf has no children.")
        if is_dir and not recursive and ("alt" in query or "wait_for_change" in query):
            raise _Refused(400, "Use recursive=true for the JSON or text form of a directory.")
        if query.get("wait_for_change", "").lower() == "true":
            node = await self._wait(request, segments, etag_of(to_json(node)))
        etag = etag_of(to_json(node))
        if is_dir and not recursive:
            return _answer(listing(node), TEXT, etag=etag)
        if query.get("alt", "json" if is_dir else "text") == "json":
            verbatim = not VERBATIM.isdisjoint(segments)  # inside attributes/: names as set
            text = json.dumps(to_json(node, verbatim), separators=(",", ":"))
            return _answer(text, "application/json", etag=etag)
        if is_dir:
            return _answer(to_text(node), TEXT, etag=etag)
        text = "".join(f"{v}\n" for v in node) if isinstance(node, tuple) else str(node)
        return _answer(text, TEXT, etag=etag)

    async def _wait(self, request: web.Request, segments: list[str], current: str) -> Node:
        """Hold the request until the node's ETag differs from ``last_etag`` or time runs out."""
        last = request.query.get("last_etag", current)
        try:
            timeout = float(request.query.get("timeout_sec", DEFAULT_WATCH_TIMEOUT))
        except ValueError:
            timeout = DEFAULT_WATCH_TIMEOUT
        deadline = time.monotonic() + timeout
        self._watchers[id(request)] = request
        try:
            while True:
                node = self._lookup(segments)
                if node is None:
                    raise _Refused(404, "The watched value no longer exists.")
                if etag_of(to_json(node)) != last or id(request) in self._dropped:
                    return node
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return node
                changed = self._changed
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(changed.wait(), remaining)
        finally:
            self._watchers.pop(id(request), None)
            self._dropped.discard(id(request))

    def _endpoint(self, request: web.Request, endpoint: Endpoint) -> web.Response:
        if endpoint is Endpoint.TOKEN:
            self.token_requests += 1
            body = {
                "access_token": self.access_token,
                "expires_in": self.token_lifetime,
                "token_type": "Bearer",
            }
            return _answer(json.dumps(body), "application/json")
        audience = request.query.get("audience")
        if not audience:
            raise _Refused(400, "non-empty audience parameter required")
        token = identity_token(self, audience, full=request.query.get("format") == "full")
        return _answer(token, TEXT)

    async def _write_guest(self, request: web.Request, rest: list[str]) -> web.Response:
        if not self.guest_attributes_enabled:
            raise _Refused(403, "Guest attributes endpoint access is disabled.")
        if len(rest) != 2:
            raise _Refused(400, "Guest attributes are written as <namespace>/<key>.")
        namespace, key = rest
        if request.method == "DELETE":
            self._guest.get(namespace, {}).pop(key, None)
        else:
            value = await request.text()
            self._guest.setdefault(namespace, {})[key] = value
            self._guest_history.setdefault(f"{namespace}/{key}", []).append(value)
        self._notify()
        return _answer("", TEXT)


class _Refused(Exception):  # noqa: N818 - a control-flow signal inside the emulator, not an error
    """Answer the current request with an HTML error page, as the real server does."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


def _root_listing(segments: list[str]) -> str:
    if not segments:
        return "0.1/\ncomputeMetadata/\n"
    if segments == ["computeMetadata"]:
        return "v1/\n"
    raise _Refused(404, "The requested URL was not found on this server.")


def _answer(
    text: str, content_type: str, *, etag: str | None = None, status: int = 200
) -> web.Response:
    """Every answer carries an ETag: a hash of the value, so it changes only when the value does."""
    response = web.Response(status=status, text=text, content_type=content_type)
    response.headers["ETag"] = etag or etag_of(text)
    return response
