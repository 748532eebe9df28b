"""One JSON object per log line on stdout, the shape Cloud Logging parses from journald.

Fields: ``time`` (ISO 8601 UTC), ``severity``, ``message``, ``logger``, the job's ids
while a job is current (a context variable, so every module's lines carry them), and
whatever a caller put in ``extra=``. Known secret values are replaced by ``***`` in
every line, as a last guard behind the rule that secrets are never logged, and URLs in
tracebacks lose their query (signed URLs carry their signature there).
"""

from __future__ import annotations

import contextvars
import json
import logging
import sys
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from datetime import UTC, datetime
from types import MappingProxyType
from typing import Any, TextIO

from notraining_agent.util.urls import scrub_urls

_STANDARD = frozenset(logging.makeLogRecord({}).__dict__) | {"message", "asctime", "taskName"}
_NO_JOB: Mapping[str, str | None] = MappingProxyType({})
_job_ids: contextvars.ContextVar[Mapping[str, str | None]] = contextvars.ContextVar(
    "job_ids", default=_NO_JOB
)
_secrets: set[str] = set()


def register_secret(value: str) -> None:
    """Mask ``value`` wherever it would appear in a log line from now on."""
    if len(value) >= 4:
        _secrets.add(value)
        # Lines are masked after JSON encoding, where quotes and controls appear escaped.
        _secrets.add(json.dumps(value, ensure_ascii=False)[1:-1])


@contextmanager
def job_context(ntd_transaction_id: str | None, no_transaction_id: str | None) -> Iterator[None]:
    """Tag every line logged inside the block (tasks started in it too) with the job's ids."""
    token = _job_ids.set(
        {"ntd_transaction_id": ntd_transaction_id, "no_transaction_id": no_transaction_id}
    )
    try:
        yield
    finally:
        _job_ids.reset(token)


def utc_iso(timestamp: float) -> str:
    """ISO 8601 in UTC with a ``Z``, as reports and logs use."""
    return (
        datetime.fromtimestamp(timestamp, UTC)
        .isoformat(timespec="milliseconds")
        .replace("+00:00", "Z")
    )


class JsonFormatter(logging.Formatter):
    """Formats a record as one JSON line."""

    def format(self, record: logging.LogRecord) -> str:
        """The JSON line for ``record``, secrets masked."""
        entry: dict[str, Any] = {
            "time": utc_iso(record.created),
            "severity": record.levelname,  # Python's level names are Cloud Logging's
            "message": record.getMessage(),
            "logger": record.name,
        }
        entry.update({k: v for k, v in _job_ids.get().items() if v is not None})
        for key, value in record.__dict__.items():
            if key not in _STANDARD and not key.startswith("_"):
                entry[key] = value
        if record.exc_info:
            # Tracebacks quote library messages, which may hold a signed URL's query.
            entry["exception"] = scrub_urls(self.formatException(record.exc_info))
        line = json.dumps(entry, default=str, ensure_ascii=False)
        for secret in _secrets:
            line = line.replace(secret, "***")
        return line


def setup(level: int = logging.INFO, stream: TextIO | None = None) -> None:
    """Send every logger's records to ``stream`` (stdout) as JSON lines."""
    handler = logging.StreamHandler(stream or sys.stdout)
    handler.setFormatter(JsonFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    # aiohttp's access log repeats what the receiver logs itself, in another shape.
    logging.getLogger("aiohttp.access").setLevel(logging.WARNING)
