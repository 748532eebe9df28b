"""The HTTP surface Saturno posts jobs to (contract section 4).

Each request goes auth -> content type -> size (header, then while streaming) ->
decode -> validate -> ``desk.offer``. Every answer is JSON, every client mistake is
a 4xx, and every outcome is one log line without the ``Authorization`` header. The
receiver knows the lifecycle only through :class:`~notraining_agent.life.states.JobDesk`.

Slow clients are bounded three ways: the request head must arrive within
``header_timeout`` (aiohttp's keep-alive timer also runs before the first request),
the body within ``body_timeout`` (else 408), and a refused body is drained for at
most ``LINGERING_SECONDS`` before the connection is closed. Bodies are counted
after aiohttp's transparent decompression, so a gzip bomb is cut off at the limit.
Connections are capped and an unauthenticated one carries a single request with a
bounded head (:mod:`notraining_agent.http.gate`); a valid token marks its connection.
What a request must pass before its body is read is in
:mod:`notraining_agent.http.admission`; how the application is served (runner, head
timeout, lingering, log filter) is in :mod:`notraining_agent.http.server`;
``start_receiver`` is re-exported here.
"""

from __future__ import annotations

import asyncio
import functools
import json
import logging
from importlib import resources
from typing import Any

from aiohttp import hdrs, web

from notraining_agent.config import Settings
from notraining_agent.errors import InvalidJobError
from notraining_agent.http.admission import (
    AUTHENTICATOR,
    BODY_TIMEOUT_KEY,
    SETTINGS,
    RefusedError,
    authorised,
    error_response,
    expect_continue,
    read_body,
    refuse_before_reading,
    unauthorised,
)
from notraining_agent.http.auth import Authenticator
from notraining_agent.http.gate import untrusted
from notraining_agent.http.repost import RepostMemo
from notraining_agent.http.server import RunningReceiver, start_receiver
from notraining_agent.job.payload import decode_body
from notraining_agent.job.spec import parse_job
from notraining_agent.life.states import JobDesk, JobState, Offer

__all__ = ["RunningReceiver", "build_app", "start_receiver"]  # what callers import from here

log = logging.getLogger(__name__)

RECEIVER_PATH = "/receiver_no_training/"
BODY_TIMEOUT = 30.0
"""Seconds a request body may take to arrive; 1 MiB needs far less on any real link."""

DESK: web.AppKey[JobDesk] = web.AppKey("desk")
METADATA_HOSTS: web.AppKey[frozenset[str]] = web.AppKey("metadata_hosts")
OPENAPI = web.AppKey("openapi", bytes)
REPOSTS = web.AppKey("reposts", RepostMemo)
NTD_ID: web.RequestKey[str] = web.RequestKey("ntd_transaction_id")

_dumps = functools.partial(json.dumps, default=str)


def _answer(offer: Offer) -> web.Response:
    if offer.outcome == "accepted":
        return web.json_response(
            {"status": "accepted", "ntd_transaction_id": offer.ntd_transaction_id}
        )
    if offer.outcome == "known":
        state = offer.job_state or JobState.ACCEPTED
        return web.json_response(
            {"status": state.value, "ntd_transaction_id": offer.ntd_transaction_id}
        )
    current = dict(offer.current) if offer.current is not None else None
    body = {"error": offer.reason or "this VM cannot take a job now", "current": current}
    return web.json_response(body, status=409, dumps=_dumps)


def _known_id(fields: dict[str, object] | None) -> str | None:
    """The posted id for the log line of a 400, when it looks like one."""
    value = fields.get("ntd_transaction_id") if fields else None
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    if isinstance(value, str) and value.strip() and value.isprintable():
        return value.strip()[:256]
    return None


async def receive_job(request: web.Request) -> web.Response:
    """``POST /receiver_no_training/``: take, recognise or refuse a job."""
    refusal = refuse_before_reading(request)
    if refusal is not None:
        return refusal
    app = request.app
    fields: dict[str, object] | None = None
    content_type = request.headers.get(hdrs.CONTENT_TYPE, "")
    try:
        body = await read_body(request)
        spec = app[REPOSTS].recall(content_type, body)
        if spec is None:
            fields = decode_body(content_type, body)
            spec = parse_job(
                fields,
                allowed_hosts=app[SETTINGS].allowed_url_hosts,
                metadata_hosts=app[METADATA_HOSTS],
            )
    except RefusedError as exc:
        return exc.response
    except InvalidJobError as exc:
        if (known := _known_id(fields)) is not None:
            request[NTD_ID] = known
        return web.json_response({"errors": exc.errors}, status=400)
    request[NTD_ID] = spec.ntd_transaction_id
    offer = await app[DESK].offer(spec, via="http")
    if offer.outcome != "refused":  # this body is the held job's: its re-posts skip parsing
        app[REPOSTS].remember(content_type, body, spec)
    return _answer(offer)


async def healthz(request: web.Request) -> web.Response:
    """``GET /healthz``: alive, and in which state; no auth, for load balancers and humans."""
    return web.json_response({"status": "ok", "state": request.app[DESK].state.value})


async def status(request: web.Request) -> web.Response:
    """``GET /status``: the agent state and the current job, for holders of the token."""
    if not authorised(request):
        return unauthorised()
    return web.json_response(dict(request.app[DESK].status()), dumps=_dumps)


async def openapi(request: web.Request) -> web.Response:
    """``GET /openapi.json``: the document that describes this surface."""
    return web.Response(body=request.app[OPENAPI], content_type="application/json")


def _from_http_exception(exc: web.HTTPException) -> web.StreamResponse:
    """aiohttp's own 404/405/... with a JSON body, keeping headers such as ``Allow``."""
    message = exc.reason
    if exc.status == 405:
        message = f"method not allowed; use {exc.headers.get(hdrs.ALLOW, 'another method')}"
    headers = {
        name: value
        for name, value in exc.headers.items()
        if name.lower() not in ("content-type", "content-length")
    }
    return web.json_response({"error": message}, status=exc.status, headers=headers)


@web.middleware
async def _outcomes(request: web.Request, handler: Any) -> web.StreamResponse:
    """One log line per request; JSON for every error; a 500 only for our own faults."""
    loop = asyncio.get_running_loop()
    started = loop.time()
    try:
        response: web.StreamResponse = await handler(request)
    except web.HTTPException as exc:
        response = _from_http_exception(exc)
    except ConnectionError:
        _log_outcome(request, 499, started, loop.time())  # client went away mid-request
        raise
    except Exception:
        log.exception("receiver fault on %s %s", request.method, shown_path(request.path))
        response = error_response(500, "internal error in the agent; see its log")
    if untrusted(request):
        response.force_close()  # one request per connection until a valid token is shown
    _log_outcome(request, response.status, started, loop.time())
    return response


def shown_path(path: str) -> str:
    """``path`` for a log line: control, bidi and other invisible characters escaped.

    The path is percent-decoded, so ``%1b`` or ``%E2%80%AE`` would reach a terminal or
    a log viewer raw and could rewrite what an operator reads.
    """
    return "".join(ch if ch.isprintable() else ascii(ch)[1:-1] for ch in path)


def _log_outcome(request: web.Request, status_code: int, started: float, ended: float) -> None:
    path = shown_path(request.path)
    extra: dict[str, object] = {
        "http_method": request.method,
        "http_path": path,
        "http_status": status_code,
        "duration_ms": round((ended - started) * 1000, 1),
    }
    ntd_id = request.get(NTD_ID)
    if ntd_id is not None:
        extra["ntd_transaction_id"] = ntd_id
    suffix = f" ntd_transaction_id={ntd_id}" if ntd_id is not None else ""
    log.info("%s %s -> %d%s", request.method, path, status_code, suffix, extra=extra)


def build_app(
    *,
    desk: JobDesk,
    authenticator: Authenticator,
    settings: Settings,
    metadata_hosts: frozenset[str],
    body_timeout: float = BODY_TIMEOUT,
) -> web.Application:
    """The receiver's application; serve it with :func:`start_receiver`."""
    app = web.Application(client_max_size=settings.max_body_bytes, middlewares=[_outcomes])
    app[DESK] = desk
    app[AUTHENTICATOR] = authenticator
    app[SETTINGS] = settings
    app[METADATA_HOSTS] = metadata_hosts
    app[BODY_TIMEOUT_KEY] = body_timeout
    app[REPOSTS] = RepostMemo()
    app[OPENAPI] = resources.files("notraining_agent.http").joinpath("openapi.json").read_bytes()
    app.router.add_post(RECEIVER_PATH, receive_job, expect_handler=expect_continue)
    app.router.add_post(RECEIVER_PATH.rstrip("/"), receive_job, expect_handler=expect_continue)
    app.router.add_get("/healthz", healthz, allow_head=False)
    app.router.add_get("/status", status, allow_head=False)
    app.router.add_get("/openapi.json", openapi, allow_head=False)
    return app
