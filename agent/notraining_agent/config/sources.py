"""Config sources (file, metadata, environment, flags) and their merge into Settings."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, cast

from notraining_agent.config.settings import (
    ENV_PREFIX,
    JOB_ATTRIBUTE,
    KEYS,
    METADATA_PREFIX,
    SECRET_KEYS,
    Secret,
    Settings,
)
from notraining_agent.config.values import PARSERS, InvalidValueError
from notraining_agent.errors import ConfigError


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
    import yaml  # noqa: PLC0415 - only a config file needs it; VMs mostly use metadata (issue 12)

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
                values[key] = PARSERS[key](raw)
            except InvalidValueError as exc:
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
