"""A Saturno fake: receives the boot and end reports, records them, misbehaves on cue.

Faults are a script per report kind, played in order: answer a status for the
next N calls, answer after a delay, or drop the connection. With the script
empty it answers 200. Tests wait for reports with :meth:`SaturnoEmulator.wait_for`
instead of sleeping.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Literal

import jwt
from aiohttp import web

log = logging.getLogger(__name__)

ReportKind = Literal["register", "done"]
PATHS: dict[ReportKind, str] = {"register": "/register/", "done": "/done/"}
JWT_LEEWAY = 30.0


@dataclass(frozen=True)
class Report:
    """One POST as received, and what the emulator answered (``None``: connection dropped)."""

    kind: ReportKind
    path: str
    headers: dict[str, str]
    body: Any
    raw: bytes
    received_at: float
    status: int | None
    jwt_claims: dict[str, Any] | None = None

    @property
    def authorization(self) -> str | None:
        """The ``Authorization`` header as sent."""
        return self.headers.get("Authorization")

    @property
    def idempotency_key(self) -> str | None:
        """The ``Idempotency-Key`` header as sent."""
        return self.headers.get("Idempotency-Key")

    @property
    def accepted(self) -> bool:
        """Whether the emulator answered 2xx."""
        return self.status is not None and 200 <= self.status < 300


@dataclass
class _Step:
    status: int | None  # None: drop the connection
    delay: float
    remaining: int | None  # None: forever


class SaturnoEmulator:
    """``POST /register/`` and ``POST /done/``, recorded; faults scripted per kind."""

    def __init__(
        self,
        *,
        base_url: str = "",
        authorization: str | None = None,
        jwt_secret: str | None = None,
        jwt_audience: str | None = None,
    ) -> None:
        """``authorization`` requires that exact header; ``jwt_secret`` requires an HS256
        JWT (raw or after ``Bearer``) with ``exp``, signed with it. Otherwise 401."""
        self.base_url = base_url
        self.authorization = authorization
        self.jwt_secret = jwt_secret
        self.jwt_audience = jwt_audience
        self.reports: list[Report] = []
        self._scripts: dict[ReportKind, deque[_Step]] = {k: deque() for k in PATHS}
        self._changed = asyncio.Condition()
        self._closing = asyncio.Event()

    @property
    def register_url(self) -> str:
        """Where the agent sends its boot report (set ``base_url`` once served)."""
        return self._url("register")

    @property
    def done_url(self) -> str:
        """Where the agent sends its end report."""
        return self._url("done")

    def _url(self, kind: ReportKind) -> str:
        if not self.base_url:
            raise RuntimeError("set SaturnoEmulator.base_url to the served URL first")
        return self.base_url.rstrip("/") + PATHS[kind]

    # -- steering -----------------------------------------------------------------------

    def fail(self, kind: ReportKind, status: int, *, times: int | None = 1) -> None:
        """Then answer ``status`` to the next ``times`` calls (``None``: every call)."""
        self._scripts[kind].append(_Step(status, 0.0, times))

    def delay(
        self, kind: ReportKind, seconds: float, *, times: int | None = 1, status: int = 200
    ) -> None:
        """Then answer ``status`` only after ``seconds``, for the next ``times`` calls."""
        self._scripts[kind].append(_Step(status, seconds, times))

    def refuse(self, kind: ReportKind, *, times: int | None = 1) -> None:
        """Then drop the connection without an answer, for the next ``times`` calls."""
        self._scripts[kind].append(_Step(None, 0.0, times))

    def clear_faults(self, kind: ReportKind | None = None) -> None:
        """Forget the remaining script of ``kind`` (or of both)."""
        for key in PATHS if kind is None else (kind,):
            self._scripts[key].clear()

    # -- inspection ----------------------------------------------------------------------

    def reports_for(self, kind: ReportKind, *, accepted_only: bool = False) -> list[Report]:
        """The reports of one kind, oldest first; ``accepted_only`` keeps the 2xx ones."""
        return [r for r in self.reports if r.kind == kind and (r.accepted or not accepted_only)]

    async def wait_for(
        self, kind: ReportKind, *, count: int = 1, timeout: float, accepted_only: bool = False
    ) -> list[Report]:
        """Wait until ``count`` reports of ``kind`` arrived; return all of them so far.

        Raises:
            TimeoutError: fewer arrived within ``timeout`` seconds.
        """

        def enough() -> bool:
            return len(self.reports_for(kind, accepted_only=accepted_only)) >= count

        try:
            async with asyncio.timeout(timeout), self._changed:
                await self._changed.wait_for(enough)
        except TimeoutError as exc:
            got = len(self.reports_for(kind, accepted_only=accepted_only))
            raise TimeoutError(
                f"Saturno emulator got {got} of {count} {kind} reports in {timeout} s"
            ) from exc
        return self.reports_for(kind, accepted_only=accepted_only)

    def idempotency_keys(self, kind: ReportKind | None = None) -> set[str]:
        """The distinct ``Idempotency-Key`` values received (of ``kind``, or all)."""
        return {
            r.idempotency_key
            for r in self.reports
            if r.idempotency_key is not None and (kind is None or r.kind == kind)
        }

    def count_idempotency_keys(self, kind: ReportKind | None = None) -> int:
        """How many distinct reports were sent, retries counted once."""
        return len(self.idempotency_keys(kind))

    # -- the app --------------------------------------------------------------------------

    def app(self) -> web.Application:
        """A fresh aiohttp app over this emulator's state."""
        app = web.Application()
        for kind, path in PATHS.items():
            handler = self._handler(kind)
            app.router.add_post(path, handler)
            app.router.add_post(path.rstrip("/"), handler)
        app.on_shutdown.append(self._on_shutdown)
        return app

    async def _on_shutdown(self, _app: web.Application) -> None:
        self._closing.set()  # cut delayed answers short so close() does not wait

    def _handler(self, kind: ReportKind) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
        async def handle(request: web.Request) -> web.StreamResponse:
            received_at = time.time()
            raw = await request.read()
            try:
                body: Any = json.loads(raw) if raw else None
            except ValueError:
                body = None
            claims, auth_ok = self._check_auth(request.headers.get("Authorization"))
            step = self._next_step(kind) if auth_ok else _Step(401, 0.0, None)
            report = Report(
                kind=kind,
                path=request.path,
                headers=dict(request.headers),
                body=body,
                raw=raw,
                received_at=received_at,
                status=step.status,
                jwt_claims=claims,
            )
            self.reports.append(report)
            async with self._changed:
                self._changed.notify_all()
            log.info("saturno: %s report answered %s", kind, step.status)
            if step.delay > 0:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._closing.wait(), step.delay)
            if step.status is None:
                if request.transport is not None:
                    request.transport.abort()
                return web.Response()
            if step.status == 401:
                return web.json_response(
                    {"detail": "Invalid token."},
                    status=401,
                    headers={"WWW-Authenticate": "Bearer"},
                )
            return web.json_response(
                {"status": "ok" if report.accepted else "error"}, status=step.status
            )

        return handle

    def _next_step(self, kind: ReportKind) -> _Step:
        script = self._scripts[kind]
        if not script:
            return _Step(200, 0.0, None)
        step = script[0]
        if step.remaining is not None:
            step.remaining -= 1
            if step.remaining <= 0:
                script.popleft()
        return step

    def _check_auth(self, header: str | None) -> tuple[dict[str, Any] | None, bool]:
        if self.authorization is not None and header != self.authorization:
            return None, False
        if self.jwt_secret is None:
            return None, True
        token = (header or "").removeprefix("Bearer ").strip()
        try:
            claims: dict[str, Any] = jwt.decode(
                token,
                self.jwt_secret,
                algorithms=["HS256"],
                audience=self.jwt_audience,
                leeway=JWT_LEEWAY,
                options={"require": ["exp"], "verify_aud": self.jwt_audience is not None},
            )
        except jwt.PyJWTError as exc:
            log.info("saturno: JWT refused: %s", exc)
            return None, False
        return claims, True
