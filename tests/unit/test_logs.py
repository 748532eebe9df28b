"""JSON log lines: fields, job ids, extras, masked secrets and exceptions."""

from __future__ import annotations

import asyncio
import io
import json
import logging
import uuid
from collections.abc import Callable, Iterator
from datetime import datetime
from typing import Any

import pytest
from notraining_agent.logs import JsonFormatter, job_context, register_secret, setup, utc_iso

Lines = Callable[[], list[dict[str, Any]]]


@pytest.fixture
def capture() -> Iterator[tuple[logging.Logger, Lines]]:
    """A logger writing JSON lines to a buffer, and a reader that parses them."""
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter())
    logger = logging.getLogger(f"notraining_agent.test_logs.{uuid.uuid4().hex[:8]}")
    logger.addHandler(handler)
    logger.setLevel(logging.DEBUG)
    logger.propagate = False

    def lines() -> list[dict[str, Any]]:
        return [json.loads(line) for line in stream.getvalue().splitlines()]

    yield logger, lines
    logger.removeHandler(handler)


def fail(exc: Exception) -> None:
    """Raise ``exc`` from a frame of its own, so the traceback has something to show."""
    raise exc


def unique_secret() -> str:
    return f"s3cr3t-{uuid.uuid4().hex}"


def test_one_json_object_per_line(capture: tuple[logging.Logger, Lines]) -> None:
    """Each record is one line with time, severity, message and logger."""
    logger, lines = capture
    logger.warning("disk %s at %d%%", "sda", 93)
    logger.info("second")
    first, second = lines()
    assert first["severity"] == "WARNING"
    assert first["message"] == "disk sda at 93%"
    assert first["logger"] == logger.name
    assert first["time"].endswith("Z")
    datetime.fromisoformat(first["time"].replace("Z", "+00:00"))
    assert second["severity"] == "INFO"


def test_severity_names_are_cloud_loggings(capture: tuple[logging.Logger, Lines]) -> None:
    """DEBUG, INFO, WARNING, ERROR and CRITICAL come out under those names."""
    logger, lines = capture
    for level in (logging.DEBUG, logging.INFO, logging.WARNING, logging.ERROR, logging.CRITICAL):
        logger.log(level, "x")
    assert [line["severity"] for line in lines()] == [
        "DEBUG",
        "INFO",
        "WARNING",
        "ERROR",
        "CRITICAL",
    ]


def test_job_ids_inside_job_context_only(capture: tuple[logging.Logger, Lines]) -> None:
    """Lines logged inside job_context carry the job's ids; lines outside do not."""
    logger, lines = capture
    with job_context("ntd-7", "no-7"):
        logger.info("inside")
    logger.info("outside")
    inside, outside = lines()
    assert inside["ntd_transaction_id"] == "ntd-7"
    assert inside["no_transaction_id"] == "no-7"
    assert "ntd_transaction_id" not in outside
    assert "no_transaction_id" not in outside


def test_missing_id_is_left_out(capture: tuple[logging.Logger, Lines]) -> None:
    """A job without no_transaction_id logs only the ids it has."""
    logger, lines = capture
    with job_context("ntd-8", None):
        logger.info("x")
    (line,) = lines()
    assert line["ntd_transaction_id"] == "ntd-8"
    assert "no_transaction_id" not in line


async def test_tasks_started_in_job_context_carry_its_ids(
    capture: tuple[logging.Logger, Lines],
) -> None:
    """A task created inside job_context logs the job's ids even after the block ends."""
    logger, lines = capture
    go = asyncio.Event()

    async def later() -> None:
        await go.wait()
        logger.info("from the task")

    with job_context("ntd-9", "no-9"):
        task = asyncio.create_task(later())
    go.set()
    await task
    (line,) = lines()
    assert line["ntd_transaction_id"] == "ntd-9"


def test_extra_fields_are_top_level(capture: tuple[logging.Logger, Lines]) -> None:
    """Fields given in extra= appear in the line; unserialisable ones as text."""
    logger, lines = capture
    logger.info("x", extra={"event": "report", "attempt": 2, "when": datetime(2024, 1, 2)})
    (line,) = lines()
    assert line["event"] == "report"
    assert line["attempt"] == 2
    assert line["when"] == "2024-01-02 00:00:00"
    assert "args" not in line
    assert "levelno" not in line


def test_registered_secret_is_masked_everywhere(capture: tuple[logging.Logger, Lines]) -> None:
    """A registered secret is replaced by *** in the message and in extra fields."""
    logger, lines = capture
    secret = unique_secret()
    register_secret(secret)
    logger.info("token is %s", secret, extra={"header": f"Bearer {secret}"})
    (line,) = lines()
    assert line["message"] == "token is ***"
    assert line["header"] == "Bearer ***"


def test_short_values_are_not_registered(capture: tuple[logging.Logger, Lines]) -> None:
    """Values under 4 characters are not masked (they would blank ordinary words)."""
    logger, lines = capture
    register_secret("abc")
    logger.info("abc abc")
    assert lines()[0]["message"] == "abc abc"


def test_secret_with_json_escaped_characters_is_masked(
    capture: tuple[logging.Logger, Lines],
) -> None:
    """A secret holding a quote or backslash is masked too, not leaked in escaped form."""
    logger, lines = capture
    secret = f'pa"ss\\word-{uuid.uuid4().hex[:8]}'
    register_secret(secret)
    logger.info("value %s", secret)
    (line,) = lines()
    assert secret not in line["message"]
    assert line["message"] == "value ***"


def test_exception_field(capture: tuple[logging.Logger, Lines]) -> None:
    """A logged exception adds an ``exception`` field with the traceback."""
    logger, lines = capture
    try:
        fail(ValueError("boom"))
    except ValueError:
        logger.exception("job crashed")
    (line,) = lines()
    assert line["severity"] == "ERROR"
    assert line["message"] == "job crashed"
    assert "Traceback" in line["exception"]
    assert "ValueError: boom" in line["exception"]


def test_secret_in_exception_is_masked(capture: tuple[logging.Logger, Lines]) -> None:
    """A secret inside an exception's text is masked in the traceback field."""
    logger, lines = capture
    secret = unique_secret()
    register_secret(secret)
    try:
        fail(RuntimeError(f"auth failed with {secret}"))
    except RuntimeError:
        logger.exception("x")
    assert secret not in json.dumps(lines())


def test_non_ascii_is_kept(capture: tuple[logging.Logger, Lines]) -> None:
    """Accents stay readable in the line."""
    logger, lines = capture
    logger.info("café")
    assert lines()[0]["message"] == "café"


def test_utc_iso() -> None:
    """Timestamps are ISO 8601 UTC with milliseconds and a Z."""
    assert utc_iso(0) == "1970-01-01T00:00:00.000Z"
    assert utc_iso(1_700_000_000.25) == "2023-11-14T22:13:20.250Z"


def test_setup_routes_every_logger_to_the_stream() -> None:
    """setup() sends every logger's records to the stream as JSON; aiohttp.access is quieted."""
    root = logging.getLogger()
    saved_handlers, saved_level = root.handlers[:], root.level
    access = logging.getLogger("aiohttp.access")
    saved_access = access.level
    stream = io.StringIO()
    try:
        setup(logging.INFO, stream)
        logging.getLogger("notraining_agent.some.module").info("hello")
        logging.getLogger("notraining_agent.some.module").debug("hidden")
        assert access.level == logging.WARNING
    finally:
        root.handlers[:] = saved_handlers
        root.setLevel(saved_level)
        access.setLevel(saved_access)
    (line,) = [json.loads(text) for text in stream.getvalue().splitlines()]
    assert line["message"] == "hello"
    assert line["logger"] == "notraining_agent.some.module"


def test_a_traceback_shows_urls_without_their_query(capture: tuple[logging.Logger, Lines]) -> None:
    """A library message quoting a signed URL reaches the log without its signature."""
    logger, lines = capture
    try:
        fail(ValueError("400, url='https://arts.test/a.zip?X-Goog-Signature=cafe&x=1'"))
    except ValueError:
        logger.exception("download failed")
    (line,) = lines()
    assert "https://arts.test/a.zip'" in line["exception"]
    assert "X-Goog-Signature" not in line["exception"]
