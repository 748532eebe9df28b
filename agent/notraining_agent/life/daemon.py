"""``notraining-agent run``: wire the parts together and live the life.

Start-up (:mod:`.startup`) first; then the state directory; then the receiver, and
only then the lifecycle (READY=1 is sent once the receiver listens). Every piece
of business logic lives in the module named for it; this one only connects them.

What only a job needs (the downloader, the extractor, the inventory) is imported
after the boot report is delivered, in a thread, so start-up pays only for what
the receiver and the boot report use (issue 12).
"""

from __future__ import annotations

import asyncio
import functools
import importlib
import logging
import signal
from collections.abc import Awaitable, Callable, Coroutine, Mapping, Sequence
from contextlib import AsyncExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import aiohttp

from notraining_agent.errors import EXIT_OK
from notraining_agent.host.power import exit_powers_off, stop_vm
from notraining_agent.host.systemd import Notifier
from notraining_agent.http.auth import Authenticator, saturno_authorization
from notraining_agent.http.receiver import build_app, start_receiver
from notraining_agent.job.urlguard import metadata_hosts_from_env
from notraining_agent.life.boot import BootProbe
from notraining_agent.life.lifecycle import Collaborators, Lifecycle
from notraining_agent.life.saturno import SaturnoClient
from notraining_agent.life.startup import load
from notraining_agent.life.store import StateStore
from notraining_agent.processors import load_processor
from notraining_agent.util.retry import Clock
from notraining_agent.util.tlsdefer import cas_loaded

if TYPE_CHECKING:
    from notraining_agent.config import Settings
    from notraining_agent.job.runner import JobOutcome
    from notraining_agent.job.spec import JobSpec
    from notraining_agent.processors.base import Processor

JOB_MODULE = "notraining_agent.job.runner"

log = logging.getLogger(__name__)


async def run(
    config_path: Path | None, assignments: Sequence[str], environ: Mapping[str, str]
) -> int:
    """The daemon: returns the exit code; SIGTERM or SIGINT end it cleanly with 0."""
    async with AsyncExitStack() as stack:
        session = await stack.enter_async_context(aiohttp.ClientSession())
        await cas_loaded()  # the metadata server is http://, but a secret or Saturno is https://
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
                run_job=_LazyJobRun(
                    settings,
                    load_processor(settings.processor),
                    metadata_hosts,
                    tokens.token if tokens is not None else None,
                    environ.get("STORAGE_EMULATOR_HOST"),
                ),
                warm_up=functools.partial(asyncio.to_thread, importlib.import_module, JOB_MODULE),
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
        return await _until_signal(lifecycle.run(), lifecycle.before_signal_exit)


@dataclass(frozen=True)
class _LazyJobRun:
    """:class:`~notraining_agent.job.runner.JobRun`, its module imported when first needed."""

    settings: Settings
    processor: Processor
    metadata_hosts: frozenset[str]
    token: Callable[[], Awaitable[str]] | None
    storage_emulator_host: str | None

    async def __call__(self, spec: JobSpec, job_dir: Path) -> JobOutcome:
        """Run ``spec`` in ``job_dir``."""
        runner = importlib.import_module(JOB_MODULE)
        job_run = runner.JobRun(
            self.settings,
            self.processor,
            self.metadata_hosts,
            self.token,
            self.storage_emulator_host,
        )
        outcome: JobOutcome = await job_run(spec, job_dir)
        return outcome


async def _until_signal(
    life: Coroutine[Any, Any, int], before_exit: Callable[[], Awaitable[None]]
) -> int:
    """Run the life; SIGTERM/SIGINT end it cleanly with 0, after ``before_exit`` (bounded by
    its owner; the preempted report). A second signal ends it at once."""
    task = asyncio.ensure_future(life)
    loop = asyncio.get_running_loop()
    winding: list[asyncio.Task[None]] = []

    async def wind_down() -> None:
        try:
            await before_exit()
        finally:
            task.cancel()

    def on_signal(sig: signal.Signals) -> None:
        log.info("%s received: ending cleanly", sig.name, extra={"event": "signal"})
        if winding or sig is signal.SIGINT:
            task.cancel()
        else:
            winding.append(loop.create_task(wind_down(), name="wind-down"))

    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, on_signal, sig)
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
        for pending in winding:
            pending.cancel()
