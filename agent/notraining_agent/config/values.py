"""Parsers for raw config values; each raises InvalidValueError saying what it expected."""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Iterable
from pathlib import Path
from urllib.parse import urlsplit

from notraining_agent.config.settings import DEFAULT_LISTEN_HOST, DEFAULT_PROCESSOR, Secret

_DURATION = re.compile(r"^\s*(\d+(?:\.\d*)?|\.\d+)\s*([smh]?)\s*$")
_UNITS = {"": 1.0, "s": 1.0, "m": 60.0, "h": 3600.0}
_TRUE = {"true", "yes", "on", "1"}
_FALSE = {"false", "no", "off", "0"}


class InvalidValueError(ValueError):
    """A value could not be parsed; the message says what was expected."""


def parse_duration(raw: object) -> float:
    """Seconds from ``90``, ``90s``, ``1.5m`` or ``2h``."""
    if isinstance(raw, bool):
        raise InvalidValueError("expected a duration such as 90, 90s, 30m or 2h")
    if isinstance(raw, int | float):
        seconds = float(raw)
    else:
        match = _DURATION.match(str(raw))
        if not match:
            raise InvalidValueError("expected a duration such as 90, 90s, 30m or 2h")
        seconds = float(match.group(1)) * _UNITS[match.group(2)]
    if not math.isfinite(seconds):
        raise InvalidValueError("expected a finite duration such as 90, 90s, 30m or 2h")
    if seconds < 0:
        raise InvalidValueError("a duration cannot be negative")
    return seconds


def _positive_duration(raw: object) -> float:
    seconds = parse_duration(raw)
    if seconds == 0:
        raise InvalidValueError("must be longer than 0 s")
    return seconds


def _bool(raw: object) -> bool:
    if isinstance(raw, bool):
        return raw
    text = str(raw).strip().lower()
    if text in _TRUE:
        return True
    if text in _FALSE:
        return False
    raise InvalidValueError("expected true or false")


def _int(minimum: int, maximum: int | None = None) -> Callable[[object], int]:
    def parse(raw: object) -> int:
        if isinstance(raw, bool):
            raise InvalidValueError("expected a whole number")
        try:
            value = int(str(raw).strip())
        except ValueError:
            raise InvalidValueError("expected a whole number") from None
        if maximum is not None and not minimum <= value <= maximum:
            raise InvalidValueError(f"must be between {minimum} and {maximum}")
        if value < minimum:
            raise InvalidValueError(f"must be at least {minimum}")
        return value

    return parse


def _text(raw: object) -> str | None:
    if raw is None:
        return None
    text = str(raw).strip()
    return text or None


def _choice(*choices: str) -> Callable[[object], str]:
    def parse(raw: object) -> str:
        text = str(raw).strip().lower()
        if text not in choices:
            raise InvalidValueError(f"expected one of {', '.join(choices)}")
        return text

    return parse


def _http_url(raw: object) -> str | None:
    text = _text(raw)
    if text is None:
        return None
    parts = urlsplit(text)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise InvalidValueError("expected an http:// or https:// URL")
    return text.rstrip("/") if parts.path in ("", "/") else text


def _endpoint(raw: object) -> str:
    url = _http_url(raw)
    if url is None:
        raise InvalidValueError("expected an http:// or https:// URL")
    return url.rstrip("/")


def _secret(raw: object) -> Secret | None:
    text = _text(raw)
    return Secret(text) if text is not None else None


def _path(raw: object) -> Path:
    path = Path(str(raw).strip())
    if not path.is_absolute():
        raise InvalidValueError("expected an absolute path")
    return path


def _output_uri(raw: object) -> str:
    text = _text(raw) or ""
    if text and not (text.startswith("file:///") or re.match(r"^gs://[a-z0-9][\w.-]*", text)):
        raise InvalidValueError("expected file:///absolute/path or gs://bucket/prefix")
    return text.rstrip("/")


def _hosts(raw: object) -> frozenset[str]:
    items: Iterable[object] = raw if isinstance(raw, list | tuple) else str(raw or "").split(",")
    hosts = {str(item).strip().lower() for item in items}
    hosts.discard("")
    for host in hosts:
        if "/" in host or "@" in host or " " in host:
            raise InvalidValueError(f"{host!r} is not a host or host:port")
    return frozenset(hosts)


def _secret_ref(raw: object) -> str | None:
    text = _text(raw)
    if text is not None and not re.fullmatch(r"projects/[^/]+/secrets/[^/]+/versions/[^/]+", text):
        raise InvalidValueError("expected projects/PROJECT/secrets/SECRET/versions/VERSION")
    return text


PARSERS: dict[str, Callable[[object], object]] = {
    "register_url": _http_url,
    "done_url": _http_url,
    "listen_host": lambda raw: _text(raw) or DEFAULT_LISTEN_HOST,
    "port": _int(0, 65535),
    "auth_mode": _choice("jwt", "static"),
    "jwt_secret": _secret,
    "jwt_require_exp": _bool,
    "jwt_audience": _text,
    "token": _secret,
    "allow_weak_secret": _bool,
    "secret_ref": _secret_ref,
    "secretmanager_endpoint": _endpoint,
    "saturno_token": _secret,
    "idle_timeout": _positive_duration,
    "job_timeout": _positive_duration,
    "shutdown_grace": parse_duration,
    "notify_deadline": _positive_duration,
    "self_stop": _choice("stop", "delete", "poweroff", "none"),
    "compute_endpoint": _endpoint,
    "state_dir": _path,
    "output_uri": _output_uri,
    "allowed_url_hosts": _hosts,
    "max_body_bytes": _int(1),
    "max_download_bytes": _int(1),
    "processor": lambda raw: _text(raw) or DEFAULT_PROCESSOR,
    "identity_audience": _text,
}
