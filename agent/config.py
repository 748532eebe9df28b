"""Typed settings, loaded once at start from layered sources (contract section 2).

Sources, lowest precedence first: built-in defaults, the YAML file, GCE project
attributes, GCE instance attributes, ``NOTRAINING_*`` environment variables and
``--set KEY=VALUE`` flags. Each value remembers where it came from, so a bad one
is reported with its key and source, and ``check-config`` can show the origin.
"""

from __future__ import annotations

import dataclasses
import math
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, cast
from urllib.parse import urlsplit

import yaml

from agent.errors import ConfigError

DEFAULT_CONFIG_PATH = Path("/etc/notraining-agent/config.yaml")
METADATA_PREFIX = "notraining-"
ENV_PREFIX = "NOTRAINING_"
JOB_ATTRIBUTE = "notraining-job"  # a job, not a setting (contract section 6)

AuthMode = Literal["jwt", "static"]
SelfStop = Literal["stop", "delete", "poweroff", "none"]


class Secret:
    """A string that never shows itself in ``repr``, logs or ``check-config``."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def reveal(self) -> str:
        """The secret itself; call it only where the value is used."""
        return self._value

    def __repr__(self) -> str:
        return "Secret('***')"

    __str__ = __repr__

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and other._value == self._value

    def __hash__(self) -> int:
        return hash(self._value)


@dataclass(frozen=True)
class Settings:
    """The agent's effective configuration; built only by :func:`resolve`."""

    register_url: str | None = None
    done_url: str | None = None
    listen_host: str = "0.0.0.0"
    port: int = 80
    auth_mode: AuthMode = "jwt"
    jwt_secret: Secret | None = None
    jwt_require_exp: bool = True
    jwt_audience: str | None = None
    token: Secret | None = None
    allow_weak_secret: bool = False
    secret_ref: str | None = None
    secretmanager_endpoint: str = "https://secretmanager.googleapis.com"
    saturno_token: Secret | None = None
    idle_timeout: float = 30 * 60.0
    job_timeout: float = 2 * 3600.0
    shutdown_grace: float = 2 * 60.0
    notify_deadline: float = 15 * 60.0
    self_stop: SelfStop = "stop"
    compute_endpoint: str = "https://compute.googleapis.com"
    state_dir: Path = Path("/var/lib/notraining-agent")
    output_uri: str = ""  # empty means file://<state_dir>/results, filled by resolve()
    allowed_url_hosts: frozenset[str] = field(default_factory=frozenset)
    max_body_bytes: int = 1024 * 1024
    max_download_bytes: int = 2 * 1024**3
    processor: str = "manifest"
    identity_audience: str | None = None

    @property
    def auth_secret(self) -> Secret | None:
        """The secret the receiver checks tokens with, for the configured ``auth_mode``."""
        return self.jwt_secret if self.auth_mode == "jwt" else self.token


KEYS: tuple[str, ...] = tuple(f.name for f in dataclasses.fields(Settings))
SECRET_KEYS = frozenset({"jwt_secret", "token", "saturno_token"})
_DURATION = re.compile(r"^\s*(\d+(?:\.\d*)?|\.\d+)\s*([smh]?)\s*$")
_UNITS = {"": 1.0, "s": 1.0, "m": 60.0, "h": 3600.0}
_TRUE = {"true", "yes", "on", "1"}
_FALSE = {"false", "no", "off", "0"}


class _InvalidValueError(ValueError):
    """A value could not be parsed; the message says what was expected."""


def parse_duration(raw: object) -> float:
    """Seconds from ``90``, ``90s``, ``1.5m`` or ``2h``."""
    if isinstance(raw, bool):
        raise _InvalidValueError("expected a duration such as 90, 90s, 30m or 2h")
    if isinstance(raw, int | float):
        seconds = float(raw)
    else:
        match = _DURATION.match(str(raw))
        if not match:
            raise _InvalidValueError("expected a duration such as 90, 90s, 30m or 2h")
        seconds = float(match.group(1)) * _UNITS[match.group(2)]
    if not math.isfinite(seconds):
        raise _InvalidValueError("expected a finite duration such as 90, 90s, 30m or 2h")
    if seconds < 0:
        raise _InvalidValueError("a duration cannot be negative")
    return seconds


def _positive_duration(raw: object) -> float:
    seconds = parse_duration(raw)
    if seconds == 0:
        raise _InvalidValueError("must be longer than 0 s")
    return seconds


def _bool(raw: object) -> bool:
    if isinstance(raw, bool):
        return raw
    text = str(raw).strip().lower()
    if text in _TRUE:
        return True
    if text in _FALSE:
        return False
    raise _InvalidValueError("expected true or false")


def _int(minimum: int, maximum: int | None = None) -> Callable[[object], int]:
    def parse(raw: object) -> int:
        if isinstance(raw, bool):
            raise _InvalidValueError("expected a whole number")
        try:
            value = int(str(raw).strip())
        except ValueError:
            raise _InvalidValueError("expected a whole number") from None
        if maximum is not None and not minimum <= value <= maximum:
            raise _InvalidValueError(f"must be between {minimum} and {maximum}")
        if value < minimum:
            raise _InvalidValueError(f"must be at least {minimum}")
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
            raise _InvalidValueError(f"expected one of {', '.join(choices)}")
        return text

    return parse


def _http_url(raw: object) -> str | None:
    text = _text(raw)
    if text is None:
        return None
    parts = urlsplit(text)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise _InvalidValueError("expected an http:// or https:// URL")
    return text.rstrip("/") if parts.path in ("", "/") else text


def _endpoint(raw: object) -> str:
    url = _http_url(raw)
    if url is None:
        raise _InvalidValueError("expected an http:// or https:// URL")
    return url.rstrip("/")


def _secret(raw: object) -> Secret | None:
    text = _text(raw)
    return Secret(text) if text is not None else None


def _path(raw: object) -> Path:
    path = Path(str(raw).strip())
    if not path.is_absolute():
        raise _InvalidValueError("expected an absolute path")
    return path


def _output_uri(raw: object) -> str:
    text = _text(raw) or ""
    if text and not (text.startswith("file:///") or re.match(r"^gs://[a-z0-9][\w.-]*", text)):
        raise _InvalidValueError("expected file:///absolute/path or gs://bucket/prefix")
    return text.rstrip("/")


def _hosts(raw: object) -> frozenset[str]:
    items: Iterable[object] = raw if isinstance(raw, list | tuple) else str(raw or "").split(",")
    hosts = {str(item).strip().lower() for item in items}
    hosts.discard("")
    for host in hosts:
        if "/" in host or "@" in host or " " in host:
            raise _InvalidValueError(f"{host!r} is not a host or host:port")
    return frozenset(hosts)


def _secret_ref(raw: object) -> str | None:
    text = _text(raw)
    if text is not None and not re.fullmatch(r"projects/[^/]+/secrets/[^/]+/versions/[^/]+", text):
        raise _InvalidValueError("expected projects/PROJECT/secrets/SECRET/versions/VERSION")
    return text


_PARSERS: dict[str, Callable[[object], object]] = {
    "register_url": _http_url,
    "done_url": _http_url,
    "listen_host": lambda raw: _text(raw) or "0.0.0.0",
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
    "processor": lambda raw: _text(raw) or "manifest",
    "identity_audience": _text,
}


@dataclass(frozen=True)
class Layer:
    """One source of raw values; ``where(key)`` names the key as that source spells it."""

    name: str
    values: Mapping[str, object]
    spelling: Callable[[str], str] = lambda key: key

    def where(self, key: str) -> str:
        """E.g. ``environment (NOTRAINING_PORT)``, for messages and ``check-config``."""
        return f"{self.name} ({self.spelling(key)})"


def attribute_name(key: str) -> str:
    """``foo_bar`` -> ``notraining-foo-bar``."""
    return METADATA_PREFIX + key.replace("_", "-")


def env_name(key: str) -> str:
    """``foo_bar`` -> ``NOTRAINING_FOO_BAR``."""
    return ENV_PREFIX + key.upper()


def file_layer(path: Path) -> Layer:
    """Values from a YAML mapping; unknown keys are errors (a typo must not pass silently)."""
    where = f"file {path}"
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ConfigError(f"config: cannot read {where}: {exc.strerror}; fix --config") from exc
    except yaml.YAMLError as exc:
        raise ConfigError(f"config: {where} is not valid YAML ({exc}); fix the file") from exc
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(f"config: {where} must hold a mapping of key: value")
    unknown = sorted(str(key) for key in data if key not in KEYS)
    if unknown:
        raise ConfigError(f"config: unknown key {unknown[0]!r} in {where}; see README for keys")
    return Layer(where, {str(k): v for k, v in data.items()})


def metadata_layer(kind: Literal["project", "instance"], attributes: Mapping[str, str]) -> Layer:
    """``notraining-*`` attributes; unknown ones are ignored (newer templates may add keys)."""
    values = {
        name[len(METADATA_PREFIX) :].replace("-", "_"): value
        for name, value in attributes.items()
        if name.startswith(METADATA_PREFIX) and name != JOB_ATTRIBUTE
    }
    known = {key: value for key, value in values.items() if key in KEYS}
    return Layer(f"{kind} metadata", known, attribute_name)


def env_layer(environ: Mapping[str, str]) -> Layer:
    """``NOTRAINING_*`` variables that name a key."""
    values = {key: environ[env_name(key)] for key in KEYS if env_name(key) in environ}
    return Layer("environment", values, env_name)


def cli_layer(assignments: Sequence[str]) -> Layer:
    """``--set KEY=VALUE`` flags, each checked for a known key."""
    values: dict[str, object] = {}
    for item in assignments:
        key, sep, value = item.partition("=")
        key = key.strip().replace("-", "_")
        if not sep:
            raise ConfigError(f"config: --set {item!r} must look like KEY=VALUE")
        if key not in KEYS:
            raise ConfigError(f"config: unknown key {key!r} in --set; see README for keys")
        values[key] = value
    return Layer("command line", values, lambda key: f"--set {key}")


@dataclass(frozen=True)
class LoadedConfig:
    """Settings plus, for every key, the source its value came from."""

    settings: Settings
    sources: Mapping[str, str]
    local_mode: bool = False

    def replace(self, key: str, value: object, source: str) -> LoadedConfig:
        """A copy with one key set from a later source (e.g. Secret Manager)."""
        settings = dataclasses.replace(self.settings, **cast("dict[str, Any]", {key: value}))
        return dataclasses.replace(self, settings=settings, sources={**self.sources, key: source})

    def masked(self) -> dict[str, tuple[str, str]]:
        """``key -> (printable value, source)`` with every secret shown as ``***``."""
        shown: dict[str, tuple[str, str]] = {}
        for key in KEYS:
            value = getattr(self.settings, key)
            if isinstance(value, Secret):
                text = "***"
            elif isinstance(value, frozenset):
                text = ",".join(sorted(value))
            elif value is None:
                text = ""
            else:
                text = str(value)
            shown[key] = (text, self.sources.get(key, "default"))
        return shown


def resolve(layers: Sequence[Layer], *, local_mode: bool = False) -> LoadedConfig:
    """Merge layers (later wins), parse every value, then check keys that depend on others."""
    values: dict[str, object] = {}
    sources: dict[str, str] = {}
    for layer in layers:
        for key, raw in layer.values.items():
            try:
                values[key] = _PARSERS[key](raw)
            except _InvalidValueError as exc:
                shown = "***" if key in SECRET_KEYS else repr(raw)
                raise ConfigError(f"config: {key}={shown} from {layer.where(key)}: {exc}") from None
            sources[key] = layer.where(key)
    if local_mode and values.get("self_stop", "stop") != "none":
        values["self_stop"] = "none"
        sources["self_stop"] = "local mode (not on GCE)"
    settings = Settings(**cast("dict[str, Any]", values))
    if not settings.output_uri:
        settings = dataclasses.replace(settings, output_uri=f"file://{settings.state_dir}/results")
    loaded = LoadedConfig(settings, sources, local_mode)
    _check_required(loaded)
    return loaded


def _check_required(loaded: LoadedConfig) -> None:
    settings = loaded.settings
    if not loaded.local_mode:
        for key in ("register_url", "done_url"):
            if getattr(settings, key) is None:
                raise ConfigError(
                    f"config: {key} is required on GCE; set attribute {attribute_name(key)} "
                    f"or {env_name(key)}"
                )
    needed = "jwt_secret" if settings.auth_mode == "jwt" else "token"
    if settings.auth_secret is None and settings.secret_ref is None:
        source = loaded.sources.get("auth_mode", "default")
        raise ConfigError(
            f"config: auth_mode={settings.auth_mode} from {source} needs {needed} or secret_ref;"
            " set one (secret_ref keeps the secret out of metadata)"
        )
