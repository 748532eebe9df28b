"""Who gets a connection, and what a connection may cost before it proves who it is.

The receiver faces a network where one misbehaving client can open a thousand idle
connections or park megabytes of half-sent request heads. So:

- connections are capped (:class:`Limits`), and those that have not presented a valid
  token on this connection ("untrusted") harder; when the untrusted cap is reached the
  oldest untrusted connection is closed, so a newcomer such as Saturno still gets in;
- an untrusted connection carries one request (its answer closes it), and its head
  may be at most ``head_bytes`` long (else 431, closed); the head must also arrive
  within the keep-alive timeout (see :mod:`.server`);
- the caps leave file descriptors for the job, the state file and the reports: they
  are derived from the open-files limit, which is first raised to its hard limit;
- every sign of pressure (a cap reached, ``accept()`` out of descriptors) is at most
  one WARNING per interval, never a line per connection.

aiohttp's :class:`~aiohttp.web_protocol.RequestHandler` is subclassed for the per-
connection part, and its error answers (malformed heads) become our JSON shape
without the offending bytes.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from aiohttp import web
from aiohttp.web_protocol import RequestHandler
from aiohttp.web_request import BaseRequest

from notraining_agent.http.limits import BACKLOG, Limits, Quiet

log = logging.getLogger(__name__)

_ACCEPT_FAILED = "socket.accept() out of system resource"


class ConnectionGate:
    """Admits connections under :class:`Limits`; evicts the oldest untrusted one when full."""

    def __init__(self, limits: Limits, quiet: Quiet) -> None:
        self.limits = limits
        self.quiet = quiet
        self._open: dict[GatedHandler, None] = {}  # insertion order: oldest first

    @property
    def open_count(self) -> int:
        """Connections open now."""
        return len(self._open)

    def admit(self, handler: GatedHandler) -> None:
        """Take a new connection, closing the oldest untrusted ones past the caps."""
        self._open[handler] = None
        untrusted = [h for h in self._open if not h.trusted]
        excess = max(
            len(untrusted) - self.limits.untrusted, len(self._open) - self.limits.connections, 0
        )
        if excess == 0:
            return
        victims = untrusted[:excess] if untrusted else [handler]
        for victim in victims:
            self._open.pop(victim, None)
            victim.force_close()
        self.quiet.note(
            "receiver at its connection cap (%d open, at most %d without a valid token); "
            "closing the oldest unauthenticated ones",
            len(self._open),
            self.limits.untrusted,
        )

    def forget(self, handler: GatedHandler) -> None:
        """A connection ended."""
        self._open.pop(handler, None)

    def head_refused(self, remote: str) -> None:
        """One more request head over the limit."""
        self.quiet.note(
            "refused a request head over %d bytes (from %s)", self.limits.head_bytes, remote
        )


class GatedHandler(RequestHandler):
    """aiohttp's connection handler, counted by the gate, its head bounded, errors as JSON."""

    def __init__(self, manager: web.Server, gate: ConnectionGate, **kwargs: Any) -> None:
        super().__init__(manager, **kwargs)
        self.gate = gate
        self.trusted = False
        self._head_bytes = 0
        self._head_tail = b""
        self._head_done = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        """Count the connection; the gate may close it (or an older one) at once."""
        super().connection_made(transport)
        self.gate.admit(self)

    def connection_lost(self, exc: BaseException | None) -> None:
        """Uncount the connection."""
        self.gate.forget(self)
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        """Refuse an untrusted head past ``head_bytes`` before the parser buffers more of it."""
        if not self._head_done and not self.trusted:
            window = self._head_tail + data
            end = window.find(b"\r\n\r\n")
            seen = self._head_bytes + (end + 4 - len(self._head_tail) if end >= 0 else len(data))
            if seen > self.gate.limits.head_bytes:
                self._refuse_head()
                return
            self._head_bytes = seen
            self._head_done = end >= 0
            self._head_tail = window[-3:]
        super().data_received(data)

    def _refuse_head(self) -> None:
        transport = self.transport
        if transport is None or transport.is_closing():
            return
        peer = transport.get_extra_info("peername")
        self.gate.head_refused(str(peer[0]) if peer else "?")
        body = (
            b'{"error": "request head over '
            + str(self.gate.limits.head_bytes).encode()
            + b' bytes; send fewer or shorter headers"}'
        )
        transport.write(
            b"HTTP/1.1 431 Request Header Fields Too Large\r\n"
            b"Content-Type: application/json; charset=utf-8\r\n"
            b"Content-Length: " + str(len(body)).encode() + b"\r\n"
            b"Connection: close\r\n\r\n" + body
        )
        self.force_close()

    def handle_error(
        self,
        request: BaseRequest,
        status: int = 500,
        exc: BaseException | None = None,
        message: str | None = None,
    ) -> web.StreamResponse:
        """aiohttp's answer to a head it cannot parse: our JSON, never the offending bytes.

        aiohttp's own answer quotes the bad line back, which may be a header the client
        sent (an ``Authorization``); its log line is made one INFO line by :mod:`.server`.
        """
        if status >= 500:  # our fault, not the client's: keep the traceback
            self.log_exception("Error handling request from %s", request.remote, exc_info=exc)
        else:
            self.logger.info(
                "refused a malformed request from %s: %s",
                request.remote,
                type(exc).__name__ if exc is not None else status,
            )
        if request.writer.output_size > 0:
            raise ConnectionError("the answer was already being sent; closing the connection")
        if status >= 500:
            text = "internal error in the agent; see its log"
        else:
            kind = type(exc).__name__ if exc is not None else "bad request"
            text = f"malformed request ({kind}); send a well-formed HTTP/1.1 request"
        response = web.json_response({"error": text}, status=status)
        response.force_close()
        return response


def trust(request: web.Request) -> None:
    """Mark ``request``'s connection as holding a valid token: kept alive, never evicted."""
    handler = request.protocol
    if isinstance(handler, GatedHandler):
        handler.trusted = True


def untrusted(request: web.Request) -> bool:
    """True when ``request`` came on a gated connection that has shown no valid token."""
    handler = request.protocol
    return isinstance(handler, GatedHandler) and not handler.trusted


class _QuietAccept(logging.Filter):
    """asyncio logs an ERROR and a traceback per failed ``accept()``: one WARNING per interval."""

    def __init__(self, quiet: Quiet) -> None:
        super().__init__()
        self._quiet = quiet

    def filter(self, record: logging.LogRecord) -> bool:
        if str(record.msg).startswith(_ACCEPT_FAILED):
            self._quiet.note(
                "the receiver cannot accept connections: the agent is out of file descriptors"
            )
            return False
        return True


class GatedSite(web.BaseSite):
    """A TCP site whose connections are :class:`GatedHandler` s sharing one gate."""

    def __init__(
        self,
        runner: web.BaseRunner,
        host: str,
        port: int,
        *,
        gate: ConnectionGate,
        handler_args: dict[str, Any],
    ) -> None:
        super().__init__(runner, backlog=BACKLOG)
        self._host = host
        self._port = port
        self._gate = gate
        self._handler_args = handler_args
        self._accept_filter = _QuietAccept(gate.quiet)

    @property
    def name(self) -> str:
        """``http://host:port``."""
        return f"http://{self._host}:{self._port}"

    async def start(self) -> None:
        """Listen; each accepted socket gets its own :class:`GatedHandler`."""
        await super().start()
        server = self._runner.server
        assert server is not None  # noqa: S101 - runner.setup() ran (BaseSite checks it)
        loop = asyncio.get_running_loop()

        def handler() -> GatedHandler:
            return GatedHandler(server, self._gate, loop=loop, **self._handler_args)

        logging.getLogger("asyncio").addFilter(self._accept_filter)
        self._server = await loop.create_server(
            handler, self._host, self._port, backlog=BACKLOG, reuse_address=True
        )

    async def stop(self) -> None:
        """Stop listening."""
        logging.getLogger("asyncio").removeFilter(self._accept_filter)
        await super().stop()
