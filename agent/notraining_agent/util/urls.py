"""The URL-sanitising rule: a signed URL's query never reaches a report, a log or /status.

A leaf module: the job pipeline, the processors and the log formatter all pass text
through it, and the log formatter must not depend on the job pipeline.
"""

from __future__ import annotations

import re

from yarl import URL


def shown_url(url: str | URL) -> str:
    """The URL without credentials, query or fragment: signed URLs must not reach the logs."""
    try:
        parsed = URL(url) if isinstance(url, str) else url
        return str(parsed.with_user(None).with_query(None).with_fragment(None))
    except (ValueError, TypeError):
        return "<unparsable URL>"


_URL_IN_TEXT = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*://[^\s'\"<>]+")


def scrub_urls(text: str) -> str:
    """``text`` with every URL in it passed through :func:`shown_url`.

    Library messages quote the URL they failed on (aiohttp's ``ClientResponseError``
    does, query and all), so a signed URL's signature would reach the end report,
    ``/status`` and the logs through ``str(exc)``.
    """
    return _URL_IN_TEXT.sub(lambda match: shown_url(match.group(0)), text)


def error_text(exc: BaseException) -> str:
    """``Class: message`` for an exception, URLs shown without query or credentials."""
    return f"{type(exc).__name__}: {scrub_urls(str(exc))}"
