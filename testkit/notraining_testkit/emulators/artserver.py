"""An HTTP server for a job's inputs: the package zip, the arts one by one, and traps.

Routes:

- ``GET /package.zip`` — the package's zip;
- ``GET /arts/{name}`` — one art;
- ``GET /redirect?to=URL[&status=302]`` — a redirect anywhere (chains, loops, to the
  metadata server...), for the download guard's redirect checks;
- ``GET /lie/{name}[?length=N]`` — a file whose ``Content-Length`` says ``N``
  (default: 1000 bytes more than sent), then the connection closes;
- ``GET /stream?bytes=N`` — ``N`` zero bytes, chunked, with no ``Content-Length``;
- any path given to :meth:`ArtServer.add_file`.

:meth:`ArtServer.throttle` slows every body down to a byte rate.
"""

from __future__ import annotations

import asyncio
import contextlib
import mimetypes
import time
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from typing import Any

from aiohttp import web

from notraining_testkit.emulators.artgen import ArtPackage

ZIP_PATH = "/package.zip"
LIE_EXTRA_BYTES = 1000
_CHUNK = 64 * 1024
_TICK = 0.05  # throttled bodies are written in slices of this many seconds


@dataclass(frozen=True)
class ArtRequest:
    """One request as received."""

    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    time: float


@dataclass(frozen=True)
class _File:
    data: bytes
    content_type: str


class ArtServer:
    """Serves an :class:`ArtPackage` and whatever extra files and traps a test adds."""

    def __init__(self, package: ArtPackage) -> None:
        self.package = package
        self.requests: list[ArtRequest] = []
        self.bytes_per_second: float | None = None
        self.throttled_paths: frozenset[str] | None = None
        self._extra: dict[str, _File] = {}
        self._closing = asyncio.Event()

    # -- steering -----------------------------------------------------------------------

    def add_file(self, path: str, data: bytes, *, content_type: str | None = None) -> None:
        """Serve ``data`` at ``path`` (``/other/evil.zip``), typed by its extension."""
        path = "/" + path.lstrip("/")
        self._extra[path] = _File(data, content_type or _guess_type(path))

    def throttle(
        self, bytes_per_second: float | None, *, paths: Iterable[str] | None = None
    ) -> None:
        """Send bodies at most this fast (``None``: full speed), on ``paths`` or on all."""
        self.bytes_per_second = bytes_per_second
        self.throttled_paths = None if paths is None else frozenset(paths)

    # -- inspection ----------------------------------------------------------------------

    def requests_for(self, path: str) -> list[ArtRequest]:
        """The requests made for one path, oldest first."""
        return [r for r in self.requests if r.path == path]

    def job_payload(
        self,
        ntd_transaction_id: str,
        *,
        base_url: str,
        with_zip: bool = True,
        with_paths: bool = True,
        **overrides: Any,
    ) -> dict[str, Any]:
        """The body Saturno would POST to the receiver for this package; ``overrides`` win."""
        base = base_url.rstrip("/")
        payload: dict[str, Any] = {
            "country": "MX",
            "channel": "instagram",
            "label": "summer",
            "category": "POP",
            "no_transaction_id": f"no-{ntd_transaction_id}",
            "ntd_transaction_id": ntd_transaction_id,
        }
        if with_zip:
            payload["zip_art"] = base + ZIP_PATH
        if with_paths:
            payload["arts_path"] = [f"{base}/arts/{name}" for name in self.package.names]
        payload.update(overrides)
        return payload

    # -- the app --------------------------------------------------------------------------

    def app(self) -> web.Application:
        """A fresh aiohttp app over this server's state."""
        app = web.Application(middlewares=[self._record])
        app.router.add_get(ZIP_PATH, self._zip)
        app.router.add_get("/arts/{name}", self._art)
        app.router.add_get("/redirect", self._redirect)
        app.router.add_get("/lie/{name}", self._lie)
        app.router.add_get("/stream", self._stream)
        app.router.add_get("/{tail:.*}", self._extra_file)
        app.on_shutdown.append(self._on_shutdown)
        return app

    async def _on_shutdown(self, _app: web.Application) -> None:
        self._closing.set()  # end throttled bodies so close() does not wait for them

    @web.middleware
    async def _record(
        self, request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
    ) -> web.StreamResponse:
        self.requests.append(
            ArtRequest(
                request.method,
                request.path,
                dict(request.query),
                dict(request.headers),
                time.time(),
            )
        )
        return await handler(request)

    def _find(self, name: str) -> _File:
        if name == ZIP_PATH.lstrip("/"):
            return _File(self.package.zip_bytes, "application/zip")
        data = self.package.files.get(name)
        if data is None:
            raise web.HTTPNotFound(text=f"no art named {name!r}")
        return _File(data, _guess_type(name))

    async def _zip(self, request: web.Request) -> web.StreamResponse:
        return await self._send(request, self._find(ZIP_PATH.lstrip("/")))

    async def _art(self, request: web.Request) -> web.StreamResponse:
        return await self._send(request, self._find(request.match_info["name"]))

    async def _extra_file(self, request: web.Request) -> web.StreamResponse:
        file = self._extra.get(request.path)
        if file is None:
            raise web.HTTPNotFound(text=f"nothing at {request.path}")
        return await self._send(request, file)

    async def _redirect(self, request: web.Request) -> web.StreamResponse:
        target = request.query.get("to")
        status = int(request.query.get("status", "302"))
        if not target or status not in (301, 302, 303, 307, 308):
            raise web.HTTPBadRequest(text="use /redirect?to=URL[&status=30x]")
        return web.Response(status=status, headers={"Location": target})

    async def _lie(self, request: web.Request) -> web.StreamResponse:
        file = self._find(request.match_info["name"])
        claimed = int(request.query.get("length", len(file.data) + LIE_EXTRA_BYTES))
        resp = web.StreamResponse(headers={"Content-Type": file.content_type})
        resp.content_length = claimed
        await resp.prepare(request)
        await self._write(request, resp, file.data)
        if request.transport is not None:
            request.transport.close()  # flushes what was sent, then ends the short body
        return resp

    async def _stream(self, request: web.Request) -> web.StreamResponse:
        size = int(request.query.get("bytes", str(_CHUNK)))
        resp = web.StreamResponse(headers={"Content-Type": "application/octet-stream"})
        resp.enable_chunked_encoding()
        await resp.prepare(request)
        sent = 0
        while sent < size and not self._closing.is_set():
            chunk = min(_CHUNK, size - sent)
            await self._write(request, resp, bytes(chunk))
            sent += chunk
        await resp.write_eof()
        return resp

    async def _send(self, request: web.Request, file: _File) -> web.StreamResponse:
        if self._rate(request) is None:
            return web.Response(body=file.data, content_type=file.content_type)
        resp = web.StreamResponse(headers={"Content-Type": file.content_type})
        resp.content_length = len(file.data)
        await resp.prepare(request)
        await self._write(request, resp, file.data)
        await resp.write_eof()
        return resp

    def _rate(self, request: web.Request) -> float | None:
        paths = self.throttled_paths
        return self.bytes_per_second if paths is None or request.path in paths else None

    async def _write(self, request: web.Request, resp: web.StreamResponse, data: bytes) -> None:
        rate = self._rate(request)
        step = len(data) if rate is None else max(1, int(rate * _TICK))
        for start in range(0, len(data), step):
            await resp.write(data[start : start + step])
            if rate is not None:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._closing.wait(), _TICK)
                if self._closing.is_set():
                    return


def _guess_type(name: str) -> str:
    return mimetypes.guess_type(name)[0] or "application/octet-stream"
