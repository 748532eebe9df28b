"""Where the VM gets stopped: the Compute API first, the OS as the fallback (contract section 6).

``self_stop`` picks the first layer: ``stop`` or ``delete`` ask the Compute API
(google-cloud-compute, imported only now), ``poweroff`` powers the VM off, ``none``
only logs. When the API request fails after its retries, a VM on GCE falls back to
``poweroff``; when nothing worked the agent exits 3, and systemd's unit and GCE's
``max_run_duration`` are what is left.

How ``poweroff`` powers off depends on who started the agent. Under the
notraining-agent unit, which powers the VM off when the agent exits 0 (its
``ExecStopPost=``, run by PID 1) and whose sandbox refuses ``systemctl poweroff``, the
unit says so with
``NOTRAINING_EXIT_POWERS_OFF=1``: the agent then ends cleanly and lets PID 1 do it.
Anywhere else it runs ``systemctl poweroff`` itself, and a refusal is a real failure.
"""

from __future__ import annotations

import asyncio
import logging
import shutil
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING

from notraining_agent.config import Settings
from notraining_agent.errors import EXIT_OK, EXIT_STOP_FAILED, StopError
from notraining_agent.gce import InstanceInfo
from notraining_agent.gce.compute import request_self_stop

if TYPE_CHECKING:
    from google.auth.credentials import Credentials

log = logging.getLogger(__name__)

POWEROFF_TIMEOUT = 60.0
EXIT_POWERS_OFF_ENV = "NOTRAINING_EXIT_POWERS_OFF"
"""Set to ``1`` by the notraining-agent unit, next to the ``ExecStopPost=`` that powers off."""


def exit_powers_off(environ: Mapping[str, str]) -> bool:
    """Whether systemd powers the VM off when the agent exits 0.

    True only inside a systemd service (``INVOCATION_ID``) whose unit declares it; a
    copy of the variable in a shell changes nothing.
    """
    return environ.get(EXIT_POWERS_OFF_ENV) == "1" and bool(environ.get("INVOCATION_ID"))


async def stop_vm(
    settings: Settings,
    instance: InstanceInfo,
    credentials: Callable[[], Credentials] | None,
    *,
    systemd_powers_off: bool = False,
    which: Callable[[str], str | None] = shutil.which,
) -> int:
    """Stop this VM as ``self_stop`` says; return the process's exit code (0 or 3).

    ``systemd_powers_off`` (see :func:`exit_powers_off`): a poweroff is exiting 0.
    """
    mode = settings.self_stop
    extra = {"event": "self_stop", "mode": mode}
    if mode == "none":
        log.info("self_stop is none: leaving the VM to Saturno and GCE", extra=extra)
        return EXIT_OK
    if mode in ("stop", "delete"):
        try:
            await _api_stop(settings, instance, credentials)
        except StopError as exc:
            log.error("self-stop through the Compute API failed: %s", exc, extra=extra)
            if not instance.on_gce:
                return EXIT_STOP_FAILED
            log.warning("falling back to poweroff", extra=extra)
        else:
            log.info("%s request accepted by the Compute API", mode, extra=extra)
            return EXIT_OK
    if systemd_powers_off:
        log.info(
            "powering off: exiting 0, and the notraining-agent unit powers the VM off "
            "after a clean exit",
            extra={**extra, "mode": "poweroff"},
        )
        return EXIT_OK
    try:
        await poweroff(which=which)
    except StopError as exc:
        log.critical(
            "the VM could not be stopped: %s; exiting 3 (under the notraining-agent unit, "
            "its OnFailure=poweroff.target powers the VM off next)",
            exc,
            extra=extra,
        )
        return EXIT_STOP_FAILED
    return EXIT_OK


async def _api_stop(
    settings: Settings, instance: InstanceInfo, credentials: Callable[[], Credentials] | None
) -> None:
    if credentials is None or not (instance.project and instance.zone):
        raise StopError(
            "no service-account credentials or no project/zone (not on GCE?); "
            "self_stop stop/delete needs the metadata server"
        )
    mode = settings.self_stop
    log.info("asking the Compute API to %s %s", mode, instance.name, extra={"event": "self_stop"})
    await request_self_stop(
        "delete" if mode == "delete" else "stop",
        project=instance.project,
        zone=instance.zone,
        name=instance.name,
        endpoint=settings.compute_endpoint,
        credentials=credentials(),
    )


async def poweroff(*, which: Callable[[str], str | None] = shutil.which) -> None:
    """Run ``systemctl poweroff`` found on PATH; StopError when it is missing or fails."""
    systemctl = which("systemctl")
    if systemctl is None:
        raise StopError("systemctl is not on PATH; cannot power off")
    log.info("running %s poweroff", systemctl, extra={"event": "self_stop", "mode": "poweroff"})
    try:
        process = await asyncio.create_subprocess_exec(
            systemctl,
            "poweroff",
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
        )
        output, _ = await asyncio.wait_for(process.communicate(), POWEROFF_TIMEOUT)
    except TimeoutError as exc:
        process.kill()
        raise StopError(
            f"systemctl poweroff did not return within {POWEROFF_TIMEOUT:.0f} s"
        ) from exc
    except OSError as exc:
        raise StopError(f"cannot run {systemctl}: {exc.strerror}") from exc
    if process.returncode != 0:
        text = output.decode("utf-8", "replace").strip()[:300]
        raise StopError(
            f"systemctl poweroff exited {process.returncode} ({text}); the unit may lack the "
            "privilege: see terraform/README.md on how the VM powers off"
        )
