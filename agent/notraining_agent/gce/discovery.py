"""Boot discovery: find the metadata server and read the instance, or fall back to local mode.

Kept apart from :mod:`notraining_agent.gce.metadata` (the client) because it decides *whether*
we are on GCE (DMI, GCE_METADATA_HOST) and how long to wait at boot, once per process.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from pathlib import Path

from notraining_agent.errors import MetadataError
from notraining_agent.gce import InstanceInfo
from notraining_agent.gce.local import local_instance_info
from notraining_agent.gce.metadata import DEFAULT_REQUEST_TIMEOUT, MetadataClient
from notraining_agent.util.retry import Attempt, Backoff, Clock, RetriesExhausted, Transient, retry

# The client's logger: discovery was part of notraining_agent.gce.metadata, and the "logger" field
# of its lines in Cloud Logging stays what operators already filter on.
log = logging.getLogger("notraining_agent.gce.metadata")

DMI_PRODUCT_NAME = Path("/sys/class/dmi/id/product_name")
GCE_PRODUCT_NAME = "Google Compute Engine"
BOOT_DEADLINE = 120.0
PROBE_TIMEOUT = 2.0
BOOT_BACKOFF = Backoff(initial=0.5, cap=8.0, jitter=False)
"""Between boot reads; the VM's own metadata server has no herd to spread."""


async def discover(
    environ: Mapping[str, str],
    *,
    dmi_path: Path = DMI_PRODUCT_NAME,
    boot_deadline: float = BOOT_DEADLINE,
    probe_timeout: float = PROBE_TIMEOUT,
    clock: Clock | None = None,
) -> tuple[MetadataClient | None, InstanceInfo]:
    """Find the metadata server and read the instance, or decide we are in local mode.

    On a GCE VM (DMI says so, or GCE_METADATA_HOST is set) the server may not answer
    yet at boot: retry with capped backoff until ``boot_deadline``, then raise
    :class:`MetadataError`. Elsewhere one try within ``probe_timeout``; no answer
    means local mode, returned as ``(None, local info)``.
    """
    client = MetadataClient.from_environ(environ)
    try:
        if _says_gce(dmi_path) or environ.get("GCE_METADATA_HOST"):
            info = await _read_until(client, boot_deadline, clock or Clock())
        else:
            try:
                info = await client.read_instance(timeout=probe_timeout)
            except MetadataError as exc:
                await client.close()
                local = local_instance_info()
                log.warning(
                    "Local mode: no GCE metadata server at %s (%s); running as %s (%s), "
                    "no project or zone, self_stop forced to none.",
                    client.host,
                    exc,
                    local.name,
                    local.internal_ip,
                )
                return None, local
    except BaseException:
        await client.close()
        raise
    log.info("On GCE: instance %s (%s) in %s/%s", info.name, info.ip, info.project, info.zone)
    return client, info


async def _read_until(client: MetadataClient, boot_deadline: float, clock: Clock) -> InstanceInfo:
    """Read the instance, retrying until ``boot_deadline`` seconds have passed.

    Every MetadataError counts as transient here, not only the policy's statuses: at
    boot the server (or the network to it) may answer oddly before it is ready, and on
    a VM that says it is on GCE there is nothing better to do than wait for it.
    """

    async def attempt(this: Attempt) -> InstanceInfo:
        try:
            return await client.read_instance(timeout=this.timeout(DEFAULT_REQUEST_TIMEOUT))
        except MetadataError as exc:
            raise Transient(str(exc)) from exc

    try:
        return await retry(
            attempt,
            what="Reading the metadata server at boot",
            clock=clock,
            backoff=BOOT_BACKOFF,
            deadline=clock.monotonic() + boot_deadline,
            logger=log,
        )
    except RetriesExhausted as exc:
        raise MetadataError(
            f"The metadata server at {client.base_url} did not answer usefully within "
            f"{boot_deadline:.0f} s ({exc.attempts} attempts; last: {exc.reason}) Check that "
            "the VM's network is up and 169.254.169.254 is reachable, or that "
            "GCE_METADATA_HOST names a running metadata server."
        ) from exc


def _says_gce(dmi_path: Path) -> bool:
    # One tiny sysfs read at boot; not worth a thread.
    try:
        return dmi_path.read_text().strip() == GCE_PRODUCT_NAME
    except OSError:
        return False
