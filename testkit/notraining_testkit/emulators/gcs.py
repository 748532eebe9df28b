"""A Cloud Storage JSON API fake: the slice the agent uses, both ways.

Buckets and objects live in memory. The agent uploads with ``uploadType=media``
(``POST /upload/storage/v1/b/{bucket}/o?name=...``) and checks the ``crc32c`` of the
object resource it gets back; it downloads with
``GET /storage/v1/b/{bucket}/o/{object}?alt=media``, whose answers carry
``X-Goog-Hash``. Object metadata, listing, deletion and buckets are there for tests
and the demo to look around.

Point the agent at it with ``STORAGE_EMULATOR_HOST=http://127.0.0.1:PORT``. Errors use
Google's JSON error shape. ``corrupt_checksums`` makes the next uploads report a
wrong CRC32C, as a corrupted transfer would.
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Literal
from urllib.parse import unquote

from aiohttp import web

from notraining_testkit.emulators import _gcs_wire as wire
from notraining_testkit.emulators._faults import Faults
from notraining_testkit.emulators._faults import google_error as _error
from notraining_testkit.emulators._gcs_wire import StoredObject

Operation = Literal["upload", "download", "get", "list", "delete", "bucket"]
"""The API calls the emulator answers; faults and the call record are keyed by them."""

_Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
_generations = itertools.count(1_700_000_000_000_001)


@dataclass(frozen=True)
class GcsCall:
    """One request as the emulator received it."""

    operation: Operation
    method: str
    path: str
    query: dict[str, str]
    authorization: str | None
    time: float


class GcsEmulator(Faults[Operation]):
    """Buckets of objects, uploads the real client can make, failures to inject."""

    def __init__(self, *, buckets: tuple[str, ...] = (), expected_token: str | None = None):
        """``expected_token`` set: only ``Authorization: Bearer <it>`` is let in."""
        super().__init__()
        self.expected_token = expected_token
        self.buckets: dict[str, dict[str, StoredObject]] = {name: {} for name in buckets}
        self.calls: list[GcsCall] = []
        self.corrupt_checksums = 0
        """How many of the next uploads answer with a wrong ``crc32c``."""

    # -- steering -----------------------------------------------------------------------

    def create_bucket(self, name: str) -> None:
        """Make an empty bucket (no-op when it exists)."""
        self.buckets.setdefault(name, {})

    def put(self, bucket: str, name: str, data: bytes, content_type: str = "") -> StoredObject:
        """Store an object directly (the bucket is created if needed)."""
        stored = StoredObject(
            bucket,
            name,
            bytes(data),
            content_type or "application/octet-stream",
            {},
            next(_generations),
            time.time(),
        )
        self.buckets.setdefault(bucket, {})[name] = stored
        return stored

    def get_object(self, bucket: str, name: str) -> StoredObject | None:
        """An object, or None."""
        return self.buckets.get(bucket, {}).get(name)

    def objects(self, bucket: str) -> dict[str, bytes]:
        """Every object of a bucket, name to bytes."""
        return {name: obj.data for name, obj in sorted(self.buckets.get(bucket, {}).items())}

    def calls_for(self, operation: Operation) -> list[GcsCall]:
        """The recorded calls of one kind, oldest first."""
        return [c for c in self.calls if c.operation == operation]

    # -- the app --------------------------------------------------------------------------

    def app(self) -> web.Application:
        """A fresh aiohttp app over this emulator's state."""
        app = web.Application(client_max_size=1024**3)
        routes: list[tuple[str, str, Operation, _Handler]] = [
            ("POST", "/upload/storage/v1/b/{bucket}/o", "upload", self._upload),
            ("GET", "/storage/v1/b/{bucket}/o", "list", self._list),
            ("GET", "/storage/v1/b/{bucket}/o/{object:.+}", "get", self._get),
            ("DELETE", "/storage/v1/b/{bucket}/o/{object:.+}", "delete", self._delete),
            ("GET", "/storage/v1/b/{bucket}", "bucket", self._get_bucket),
            ("POST", "/storage/v1/b", "bucket", self._insert_bucket),
        ]
        for method, path, op, handler in routes:
            app.router.add_route(method, path, self._guarded(op, handler))
        app.on_shutdown.append(self._on_shutdown)
        return app

    def _guarded(self, op: Operation, handler: _Handler) -> _Handler:
        async def guarded(request: web.Request) -> web.StreamResponse:
            if op == "get" and request.query.get("alt") == "media":
                op_seen: Operation = "download"
            else:
                op_seen = op
            auth = request.headers.get("Authorization")
            path, query = request.path, dict(request.query)
            self.calls.append(GcsCall(op_seen, request.method, path, query, auth, time.time()))
            if self.expected_token is not None and auth != f"Bearer {self.expected_token}":
                return _error(401, "Anonymous caller does not have access.", "required")
            injected = await self._injected(op_seen, request)
            return injected if injected is not None else await handler(request)

        return guarded

    # -- handlers -------------------------------------------------------------------------

    async def _upload(self, request: web.Request) -> web.StreamResponse:
        bucket = request.match_info["bucket"]
        if bucket not in self.buckets:
            return _no_bucket(bucket)
        kind = request.query.get("uploadType", "")
        if kind != "media":
            return _error(
                400, f"Unsupported uploadType {kind!r}; the agent sends media.", "invalid"
            )
        body = await request.read()
        content_type = request.headers.get("Content-Type", "")
        name = request.query.get("name", "")
        return self._store(request, bucket, name, body, content_type=content_type)

    def _store(
        self,
        request: web.Request,
        bucket: str,
        name: str,
        data: bytes,
        *,
        content_type: str,
    ) -> web.Response:
        if not name:
            return _error(400, "Required: object name.", "required")
        stored = self.put(bucket, name, data, content_type)
        resource = stored.resource(_base(request))
        if self.corrupt_checksums > 0:
            self.corrupt_checksums -= 1
            resource["crc32c"] = wire.crc32c(data + b"corrupted")
        return web.json_response(resource)

    async def _get(self, request: web.Request) -> web.StreamResponse:
        bucket, name = request.match_info["bucket"], _object_name(request)
        if bucket not in self.buckets:
            return _no_bucket(bucket)
        stored = self.buckets[bucket].get(name)
        if stored is None:
            return _error(404, f"No such object: {bucket}/{name}", "notFound")
        if request.query.get("alt") != "media":
            return web.json_response(stored.resource(_base(request)))
        headers = {
            "X-Goog-Hash": f"crc32c={wire.crc32c(stored.data)},md5={wire.md5(stored.data)}",
            "X-Goog-Generation": str(stored.generation),
            "ETag": f"CP{stored.generation}=",
        }
        return web.Response(body=stored.data, content_type=stored.content_type, headers=headers)

    async def _delete(self, request: web.Request) -> web.StreamResponse:
        bucket, name = request.match_info["bucket"], _object_name(request)
        if self.buckets.get(bucket, {}).pop(name, None) is None:
            return _error(404, f"No such object: {bucket}/{name}", "notFound")
        return web.Response(status=204)

    async def _list(self, request: web.Request) -> web.StreamResponse:
        bucket = request.match_info["bucket"]
        if bucket not in self.buckets:
            return _no_bucket(bucket)
        prefix = request.query.get("prefix", "")
        delimiter = request.query.get("delimiter", "")
        page_size = int(request.query.get("maxResults", "1000") or 1000)
        after = request.query.get("pageToken", "")
        items: list[StoredObject] = []
        prefixes: set[str] = set()
        for name in sorted(self.buckets[bucket]):
            if not name.startswith(prefix) or (after and name <= after):
                continue
            rest = name[len(prefix) :]
            if delimiter and delimiter in rest:
                prefixes.add(prefix + rest.split(delimiter, 1)[0] + delimiter)
                continue
            items.append(self.buckets[bucket][name])
        body: dict[str, Any] = {"kind": "storage#objects"}
        if len(items) > page_size:
            items = items[:page_size]
            body["nextPageToken"] = items[-1].name
        body["items"] = [obj.resource(_base(request)) for obj in items]
        if prefixes:
            body["prefixes"] = sorted(prefixes)
        return web.json_response(body)

    async def _get_bucket(self, request: web.Request) -> web.StreamResponse:
        bucket = request.match_info["bucket"]
        if bucket not in self.buckets:
            return _no_bucket(bucket)
        return web.json_response({"kind": "storage#bucket", "id": bucket, "name": bucket})

    async def _insert_bucket(self, request: web.Request) -> web.StreamResponse:
        name = str(wire.json_or_empty(await request.read()).get("name", ""))
        if not name:
            return _error(400, "Required: bucket name.", "required")
        if name in self.buckets:
            return _error(
                409,
                "Your previous request to create the named bucket succeeded "
                "and you already own it.",
                "conflict",
            )
        self.create_bucket(name)
        return web.json_response({"kind": "storage#bucket", "id": name, "name": name})


def _object_name(request: web.Request) -> str:
    """The object name from the raw path: slashes inside it arrive as ``%2F``."""
    raw = request.raw_path.split("?", 1)[0]
    return unquote(raw.split("/o/", 1)[1])


def _base(request: web.Request) -> str:
    return str(request.url.origin())


def _no_bucket(bucket: str) -> web.Response:
    return _error(404, f"The specified bucket does not exist: {bucket}", "notFound")
