"""Typed settings, loaded once at start from layered sources (contract section 2).

Sources, lowest precedence first: built-in defaults, the YAML file, GCE project
attributes, GCE instance attributes, ``NOTRAINING_*`` environment variables and
``--set KEY=VALUE`` flags. Each value remembers where it came from, so a bad one
is reported with its key and source, and ``check-config`` can show the origin.
"""

from notraining_agent.config.settings import (
    DEFAULT_CONFIG_PATH,
    ENV_PREFIX,
    JOB_ATTRIBUTE,
    KEYS,
    METADATA_PREFIX,
    SECRET_KEYS,
    AuthMode,
    Secret,
    SelfStop,
    Settings,
)
from notraining_agent.config.sources import (
    Layer,
    LoadedConfig,
    attribute_name,
    cli_layer,
    env_layer,
    env_name,
    file_layer,
    metadata_layer,
    resolve,
)
from notraining_agent.config.values import parse_duration

__all__ = [
    "DEFAULT_CONFIG_PATH",
    "ENV_PREFIX",
    "JOB_ATTRIBUTE",
    "KEYS",
    "METADATA_PREFIX",
    "SECRET_KEYS",
    "AuthMode",
    "Layer",
    "LoadedConfig",
    "Secret",
    "SelfStop",
    "Settings",
    "attribute_name",
    "cli_layer",
    "env_layer",
    "env_name",
    "file_layer",
    "metadata_layer",
    "parse_duration",
    "resolve",
]
