"""``notraining-agent run``: wire the parts together and live the life.

Start-up (:mod:`.startup`) first; then the state directory; then the receiver, and
only then the lifecycle (READY=1 is sent once the receiver listens). Every piece
of business logic lives in the module named for it; this one only connects them.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import signal
from collections.abc import Coroutine, Mapping, Sequence
from contextlib import AsyncExitStack
from pathlib import Path
from typing import Any

import aiohttp

from notraining_agent.errors import EXIT_OK
from notraining_agent.host.power import exit_powers_off, stop_vm
from notraining_agent.host.systemd import Notifier
from notraining_agent.http.auth import Authenticator, saturno_authorization
from notraining_agent.http.receiver import build_app, start_receiver
from notraining_agent.job.runner import JobRun
from notraining_agent.job.urlguard import metadata_hosts_from_env
from notraining_agent.life.boot import BootProbe
from notraining_agent.life.lifecycle import Collaborators, Lifecycle
from notraining_agent.life.saturno import SaturnoClient
from notraining_agent.life.startup import load
from notraining_agent.life.store import StateStore
from notraining_agent.processors import load_processor
from notraining_agent.util.retry import Clock

log = logging.getLogger(__name__)


async def run(
    config_path: Path | None, assignments: Sequence[str], environ: Mapping[str, str]
) -> int:
    """The daemon: returns the exit code; SIGTERM or SIGINT end it cleanly with 0."""
    async with AsyncExitStack() as stack:
        session = await stack.enter_async_context(aiohttp.ClientSession())
        start = await load(config_path, assignments, environ, session)
        if start.metadata is not None:
            stack.push_async_callback(start.metadata.close)
        settings, instance, tokens = start.loaded.settings, start.instance, start.tokens
        store = StateStore(settings.state_dir)
        record = store.open()
        clock = Clock()
        # The guard always refuses GCE's own names; add whatever GCE_METADATA_HOST names.
        metadata_hosts = metadata_hosts_from_env(environ)
        boot = BootProbe(settings, instance, start.metadata, tokens, session, settings.port)
        lifecycle = Lifecycle(
            Collaborators(
                settings=settings,
                instance=instance,
                metadata=start.metadata,
                store=store,
                saturno=SaturnoClient(
                    session,
                    functools.partial(saturno_authorization, settings, instance.name, clock.wall),
                    clock=clock,
                ),
                run_job=JobRun(
                    settings,
                    load_processor(settings.processor),
                    metadata_hosts,
                    tokens.token if tokens is not None else None,
                    environ.get("STORAGE_EMULATOR_HOST"),
                ),
                stop_vm=functools.partial(
                    stop_vm,
                    settings,
                    instance,
                    (lambda: tokens.credentials) if tokens is not None else None,
                    systemd_powers_off=exit_powers_off(environ),
                ),
                boot_facts=boot,
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
        boot.port = receiver.port  # port 0 means any: the boot report carries the bound one
        log.info(
            "receiver listening on %s:%d",
            settings.listen_host,
            receiver.port,
            extra={"event": "listening", "port": receiver.port},
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
