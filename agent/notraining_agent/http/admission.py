"""What a request must pass before its body is read, and reading that body within bounds.

Auth, then content type, then the announced size, all on headers alone and decided
once per request (the ``Expect: 100-continue`` handler may decide first, so a body
that would be refused is never invited); then the body, cut off at ``max_body_bytes``
and at ``body_timeout``. :mod:`notraining_agent.http.receiver` routes and answers.
"""

from __future__ import annotations

import asyncio

from aiohttp import hdrs, web

from notraining_agent.config import Settings
from notraining_agent.http.auth import Authenticator
from notraining_agent.http.gate import trust
from notraining_agent.job.payload import is_supported

AUTHENTICATOR = web.AppKey("authenticator", Authenticator)
SETTINGS = web.AppKey("settings", Settings)
BODY_TIMEOUT_KEY: web.AppKey[float] = web.AppKey("body_timeout")
REFUSAL: web.RequestKey[web.Response | None] = web.RequestKey("refusal")


def error_response(status: int, message: str, **headers: str) -> web.Response:
    """The receiver's one error shape: ``{"error": message}``."""
    return web.json_response({"error": message}, status=status, headers=headers or None)


def unauthorised() -> web.Response:
    """401 with the challenge, saying which header forms are understood."""
    return error_response(
        401,
        "missing or invalid token; send Authorization: <token> or Bearer <token>",
        **{hdrs.WWW_AUTHENTICATE: "Bearer"},
    )


class RefusedError(Exception):
    """Carries the answer for a body that cannot be read (too big, too slow, malformed)."""

    def __init__(self, response: web.Response) -> None:
        super().__init__(response.status)
        self.response = response


def _too_large(limit: int) -> web.Response:
    response = error_response(
        413, f"request body is over max_body_bytes ({limit} bytes); send less"
    )
    response.force_close()  # the rest of the body is never read into memory
    return response


def authorised(request: web.Request) -> bool:
    """The token check; a connection that passes it is trusted from then on (see gate)."""
    if not request.app[AUTHENTICATOR].check(request.headers.get(hdrs.AUTHORIZATION)):
        return False
    trust(request)
    return True


def refuse_before_reading(request: web.Request) -> web.Response | None:
    """Auth, then content type, then the announced size: all decided on headers alone.

    Decided once per request: the ``Expect: 100-continue`` handler decides first.
    """
    if REFUSAL in request:
        return request[REFUSAL]
    request[REFUSAL] = _refusal_on_headers(request)
    return request[REFUSAL]


def _refusal_on_headers(request: web.Request) -> web.Response | None:
    app = request.app
    if not authorised(request):
        return unauthorised()
    if not is_supported(request.headers.get(hdrs.CONTENT_TYPE, "")):
        return error_response(
            415,
            "send application/json, application/x-www-form-urlencoded or multipart/form-data",
        )
    limit = app[SETTINGS].max_body_bytes
    if request.content_length is not None and request.content_length > limit:
        return _too_large(limit)
    return None


async def read_body(request: web.Request) -> bytes:
    """The body, read chunk by chunk, cut off as soon as it passes ``max_body_bytes``."""
    limit = request.app[SETTINGS].max_body_bytes
    chunks: list[bytes] = []
    size = 0
    try:
        async with asyncio.timeout(request.app[BODY_TIMEOUT_KEY]):
            while chunk := await request.content.readany():
                size += len(chunk)
                if size > limit:
                    raise RefusedError(_too_large(limit))
                chunks.append(chunk)
    except TimeoutError:
        response = error_response(408, "the request body arrived too slowly; send it at once")
        response.force_close()
        raise RefusedError(response) from None
    except web.RequestPayloadError as exc:
        body = {"errors": {"body": f"unreadable body ({exc}); send a well-formed request"}}
        raise RefusedError(web.json_response(body, status=400)) from None
    return b"".join(chunks)


async def expect_continue(request: web.Request) -> web.Response | None:
    """``Expect: 100-continue``: ask for the body only when the headers pass every check.

    aiohttp's default sends ``100 Continue`` before the handler runs, inviting a body
    that auth or size would refuse. A refusal is left for the receiver's handler to answer
    (and the request to be logged like any other).
    """
    expect = request.headers.get(hdrs.EXPECT, "")
    if expect.lower() != "100-continue":
        return error_response(417, "only Expect: 100-continue is understood; send no other Expect")
    if refuse_before_reading(request) is None and request.version >= (1, 1):
        await request.writer.write(b"HTTP/1.1 100 Continue\r\n\r\n")
        request.writer.output_size = 0  # as aiohttp's own handler: the answer is still to come
    return None
