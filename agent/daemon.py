"""``notraining-agent run``: read where we are, load the config, wire the parts, live the life.

Start-up order matters and is the contract's: metadata (or local mode) first,
since GCE attributes are config sources; then config, the secret from Secret
Manager, the weak-secret check, the state directory; then the receiver, and only
then the lifecycle (READY=1 is sent once the receiver listens).
"""

from __future__ import annotations

import asyncio
import logging
import signal
from collections.abc import Coroutine, Mapping, Sequence
from contextlib import AsyncExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp

from agent import agent_version
from agent import config as cfg
from agent.auth import Authenticator, check_secret_strength, saturno_authorization
from agent.errors import EXIT_OK, ConfigError, MetadataError
from agent.gce import InstanceInfo
from agent.gce.compute import can_self_stop
from agent.gce.credentials import TokenSource
from agent.gce.discovery import discover
from agent.gce.metadata import MetadataClient
from agent.gce.secrets import access_secret_version
from agent.job.runner import JobOutcome, run_job
from agent.job.spec import JobSpec
from agent.job.urlguard import metadata_hosts_from_env
from agent.lifecycle import BootFacts, Collaborators, Lifecycle
from agent.logs import register_secret
from agent.processors import load_processor
from agent.receiver import build_app, start_receiver
from agent.retry import Clock
from agent.saturno import SaturnoClient
from agent.shutdown import stop_vm
from agent.state import StateStore
from agent.systemd import Notifier, boot_id

log = logging.getLogger(__name__)


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
    tokens = TokenSource(metadata.host) if metadata is not None and instance.on_gce else None
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


async def run(
    config_path: Path | None, assignments: Sequence[str], environ: Mapping[str, str]
) -> int:
    """The daemon: returns the exit code; SIGTERM or SIGINT end it cleanly with 0."""
    async with AsyncExitStack() as stack:
        session = await stack.enter_async_context(aiohttp.ClientSession())
        start = await load(config_path, assignments, environ, session)
        if start.metadata is not None:
            stack.push_async_callback(start.metadata.close)
        settings, instance = start.loaded.settings, start.instance
        processor = load_processor(settings.processor)
        store = StateStore(settings.state_dir)
        record = store.open()
        clock = Clock()
        # The guard always refuses GCE's own names; add whatever GCE_METADATA_HOST names.
        metadata_hosts = metadata_hosts_from_env(environ)
        tokens = start.tokens
        bound_port = settings.port  # port 0 means any: replaced by the bound one below

        async def job(spec: JobSpec, job_dir: Path) -> JobOutcome:
            return await run_job(
                spec,
                settings=settings,
                job_dir=job_dir,
                processor=processor,
                metadata_hosts=metadata_hosts,
                token=tokens.token if tokens is not None else None,
                storage_emulator_host=environ.get("STORAGE_EMULATOR_HOST"),
            )

        async def boot_facts() -> BootFacts:
            allowed = False
            if tokens is not None and instance.project and instance.zone:
                allowed = await can_self_stop(
                    settings.self_stop,
                    project=instance.project,
                    zone=instance.zone,
                    name=instance.name,
                    endpoint=settings.compute_endpoint,
                    token=tokens.token,
                    session=session,
                    scopes=instance.scopes,
                )
            if not allowed and settings.self_stop in ("stop", "delete"):
                log.warning(
                    "can_self_stop is false: only Saturno and GCE's max_run_duration "
                    "can end this VM"
                )
            identity = None
            if settings.identity_audience and start.metadata is not None:
                try:
                    identity = await start.metadata.identity_token(settings.identity_audience)
                except MetadataError as exc:  # the boot report must go out without it
                    log.warning("no identity token for the boot report: %s", exc)
            return BootFacts(boot_id(), bound_port, agent_version(), allowed, identity)

        async def stop() -> int:
            return await stop_vm(
                settings, instance, (lambda: tokens.credentials) if tokens is not None else None
            )

        saturno = SaturnoClient(
            session,
            lambda: saturno_authorization(settings, instance.name, clock.wall),
            clock=clock,
        )
        lifecycle = Lifecycle(
            Collaborators(
                settings=settings,
                instance=instance,
                metadata=start.metadata,
                store=store,
                saturno=saturno,
                run_job=job,
                stop_vm=stop,
                boot_facts=boot_facts,
                notifier=Notifier(environ),
                clock=clock,
                metadata_hosts=metadata_hosts,
            ),
            record,
        )
        app = build_app(
            desk=lifecycle,
            authenticator=Authenticator(settings),
            settings=settings,
            metadata_hosts=metadata_hosts,
        )
        receiver = await start_receiver(app, settings.listen_host, settings.port)
        stack.push_async_callback(receiver.close)
        bound_port = receiver.port
        log.info(
            "receiver listening on %s:%d",
            settings.listen_host,
            bound_port,
            extra={"event": "listening", "port": bound_port},
        )
        return await _until_signal(lifecycle.run())


async def _until_signal(life: Coroutine[Any, Any, int]) -> int:
    """Run the life; SIGTERM/SIGINT cancel it, and a cancelled life is a clean exit 0."""
    task = asyncio.ensure_future(life)
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, _on_signal, task, sig)
    try:
        return await task
    except asyncio.CancelledError:
        if not task.cancelled():
            raise
        log.info("stopped by signal; state is saved", extra={"event": "signal_exit"})
        return EXIT_OK
    finally:
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.remove_signal_handler(sig)


def _on_signal(task: asyncio.Task[int], sig: signal.Signals) -> None:
    log.info("%s received: ending cleanly", sig.name, extra={"event": "signal"})
    task.cancel()
