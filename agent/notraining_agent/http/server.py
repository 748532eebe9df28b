"""How the receiver's application is served: the aiohttp runner, its bounds and its log.

Kept apart from :mod:`.receiver` (what each request gets) because serving is about
sockets and timeouts: slow heads, lingering drains, header sizes, shutdown, and keeping
aiohttp's own error lines free of request bytes. Who gets a connection at all (caps,
eviction, the head-size bound) is :mod:`.gate`'s.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from aiohttp import web
from aiohttp.http_exceptions import HttpProcessingError
from aiohttp.web_protocol import RequestPayloadError

from notraining_agent.errors import ConfigError
from notraining_agent.http.gate import ConnectionGate, GatedSite
from notraining_agent.http.limits import (
    MAX_HEADERS,
    Limits,
    Quiet,
    limits_for,
    raise_open_files_limit,
)

HEADER_TIMEOUT = 15.0
"""Seconds a connection may take to send a request head (and stay idle between requests)."""
LINGERING_SECONDS = 2.0
"""How long a refused body is drained (discarded) so the client still reads the answer."""
MAX_HEADER_FIELD_BYTES = 16 * 1024
"""Above aiohttp's 8190 so an 8 KiB+ token reaches the auth check and gets a 401."""
SHUTDOWN_SECONDS = 5.0


class _NoRequestBytes(logging.Filter):
    """Keep aiohttp's malformed-request errors to one line without the request's bytes.

    aiohttp logs a bad request head with a traceback whose message quotes the
    offending line, which may be an ``Authorization`` header. Internet noise is
    not an agent error either, so these become one INFO line naming the error class.
    So does a client hanging up mid-body: ``_outcomes`` in :mod:`.receiver` logs it
    as 499 and re-raises, and aiohttp would add an ERROR traceback per dropped connection.
    And so does a body that cannot be decoded (``Content-Encoding: gzip`` over bytes that
    are not): aiohttp meets it while draining the body of a refused request, and anyone
    could otherwise write a 40-line ERROR with one unauthenticated request.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        exc = record.exc_info[1] if record.exc_info else None
        if isinstance(exc, HttpProcessingError | RequestPayloadError | ConnectionError):
            record.msg = (
                "a client from %s went away mid-request: %s"
                if isinstance(exc, ConnectionError)
                else "refused a malformed request from %s: %s"
            )
            remote = record.args[0] if isinstance(record.args, tuple) and record.args else "?"
            record.args = (remote, type(exc).__name__)
            record.exc_info = None
            record.exc_text = None
            record.levelno, record.levelname = logging.INFO, "INFO"
        return True


# Named under the receiver's logger, as before this module was split off: the "logger" field of
# these lines in Cloud Logging stays what operators already filter on.
_http_log = logging.getLogger("notraining_agent.http.receiver.http")
_http_log.addFilter(_NoRequestBytes())


@dataclass
class RunningReceiver:
    """A receiver being served; ``close()`` stops listening and ends open connections."""

    runner: web.AppRunner
    host: str
    port: int
    gate: ConnectionGate

    async def close(self) -> None:
        """Stop the server, giving in-flight requests up to ``SHUTDOWN_SECONDS``."""
        await self.runner.cleanup()


async def start_receiver(
    app: web.Application,
    host: str,
    port: int,
    *,
    header_timeout: float = HEADER_TIMEOUT,
    limits: Limits | None = None,
    quiet: Quiet | None = None,
) -> RunningReceiver:
    """Serve ``app`` on ``host:port`` (0 = any free port); raises ConfigError if it cannot bind.

    ``limits`` default to what the open-files limit (raised first) leaves room for.
    """
    gate = ConnectionGate(limits or limits_for(raise_open_files_limit()), quiet or Quiet())
    handler_args: dict[str, object] = {
        "access_log": None,  # _outcomes logs each request once, without headers
        "keepalive_timeout": header_timeout,  # also bounds the time to send the first head
        "lingering_time": LINGERING_SECONDS,
        "max_field_size": MAX_HEADER_FIELD_BYTES,
        "max_headers": MAX_HEADERS,
        "logger": _http_log,
    }
    runner = web.AppRunner(
        app,
        handle_signals=False,  # the lifecycle owns SIGTERM (exit 0, state saved)
        access_log=None,
        shutdown_timeout=SHUTDOWN_SECONDS,
    )
    await runner.setup()
    site = GatedSite(runner, host, port, gate=gate, handler_args=handler_args)
    try:
        await site.start()
    except OSError as exc:
        await runner.cleanup()
        raise ConfigError(
            f"config: the receiver cannot listen on {host}:{port} ({exc.strerror}); "
            "set listen_host/port to a free address this user may bind"
        ) from exc
    bound_port = int(runner.addresses[0][1]) if runner.addresses else port
    return RunningReceiver(runner=runner, host=host, port=bound_port, gate=gate)
