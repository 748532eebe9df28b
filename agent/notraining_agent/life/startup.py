"""Start-up: where are we, and with what config. Everything ``run`` and ``check-config`` share.

The order is the contract's: metadata (or local mode) first, since GCE attributes
are config sources; then the config, the secret from Secret Manager, and the
weak-secret check, so a bad secret stops the agent before it listens.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import aiohttp

from notraining_agent import config as cfg
from notraining_agent.errors import ConfigError
from notraining_agent.gce import InstanceInfo
from notraining_agent.gce.credentials import TokenSource
from notraining_agent.gce.discovery import discover
from notraining_agent.gce.metadata import MetadataClient
from notraining_agent.gce.secrets import access_secret_version
from notraining_agent.http.auth import check_secret_strength
from notraining_agent.logs import register_secret


@dataclass
class Startup:
    """What start-up learned: the config, where we are, and the GCE clients (None off GCE)."""

    loaded: cfg.LoadedConfig
    instance: InstanceInfo
    metadata: MetadataClient | None
    tokens: TokenSource | None


async def load(
    config_path: Path | None,
    assignments: Sequence[str],
    environ: Mapping[str, str],
    session: aiohttp.ClientSession,
) -> Startup:
    """Discover GCE, merge every config source, fetch ``secret_ref``, refuse weak secrets."""
    metadata, instance = await discover(environ)
    layers: list[cfg.Layer] = []
    path = config_path or (cfg.DEFAULT_CONFIG_PATH if cfg.DEFAULT_CONFIG_PATH.exists() else None)
    if path is not None:
        layers.append(cfg.file_layer(path))
    layers += [
        cfg.metadata_layer("project", instance.project_attributes),
        cfg.metadata_layer("instance", instance.instance_attributes),
        cfg.env_layer(environ),
        cfg.cli_layer(assignments),
    ]
    loaded = cfg.resolve(layers, local_mode=not instance.on_gce)
    # Tokens come from the metadata server discover() found, not from a second env read.
    tokens = TokenSource(metadata) if metadata is not None and instance.on_gce else None
    settings = loaded.settings
    if settings.secret_ref is not None:
        if tokens is None:
            raise ConfigError("config: secret_ref needs the GCE metadata server for credentials")
        value = await access_secret_version(
            settings.secret_ref,
            endpoint=settings.secretmanager_endpoint,
            tokens=tokens,
            session=session,
        )
        key = "jwt_secret" if settings.auth_mode == "jwt" else "token"
        loaded = loaded.replace(key, cfg.Secret(value), f"Secret Manager ({settings.secret_ref})")
    for name in cfg.SECRET_KEYS:
        secret = getattr(loaded.settings, name)
        if isinstance(secret, cfg.Secret):
            register_secret(secret.reveal())
    check_secret_strength(loaded.settings, loaded.sources)
    return Startup(loaded, instance, metadata, tokens)
