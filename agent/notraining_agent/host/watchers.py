"""Long-poll watches on the metadata server: preemption, maintenance, and a job by attribute.

Each watch is a coroutine the lifecycle owns and cancels; the metadata client's
``watch()`` does the ``wait_for_change`` loop with ETags and reconnects.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Awaitable, Callable

from notraining_agent.config import JOB_ATTRIBUTE
from notraining_agent.errors import InvalidJobError
from notraining_agent.gce.metadata import MetadataClient
from notraining_agent.job.payload import decode_body
from notraining_agent.job.spec import JobSpec, parse_job

log = logging.getLogger(__name__)

WATCH_TIMEOUT_SEC = 60


async def watch_preempted(
    metadata: MetadataClient, on_preempted: Callable[[], Awaitable[None]]
) -> None:
    """Call ``on_preempted`` once, as soon as ``instance/preempted`` turns ``TRUE``."""
    async for value in metadata.watch("instance/preempted", timeout_sec=WATCH_TIMEOUT_SEC):
        if value.strip().upper() == "TRUE":
            log.warning("GCE preempted this VM: about 30 s left", extra={"event": "preempted"})
            await on_preempted()
            return


async def ask_preempted(metadata: MetadataClient, *, timeout: float) -> bool:
    """Whether ``instance/preempted`` is ``TRUE`` now; False, logged, when it cannot be asked."""
    try:
        answer = await metadata.get("instance/preempted", timeout=timeout)
    except Exception as exc:  # any failure: the caller goes on as if not preempted
        log.warning("could not ask whether the VM was preempted: %s", exc)
        return False
    return answer.strip().upper() == "TRUE"


async def watch_maintenance(metadata: MetadataClient) -> None:
    """Log host maintenance events, so an operator can tie a slow or moved job to one."""
    async for value in metadata.watch("instance/maintenance-event", timeout_sec=WATCH_TIMEOUT_SEC):
        event = value.strip()
        if event and event != "NONE":
            log.warning("host maintenance event: %s", event, extra={"event": "maintenance"})


async def watch_job_attribute(
    metadata: MetadataClient, on_job: Callable[[str], Awaitable[None]]
) -> None:
    """Call ``on_job`` with the ``notraining-job`` attribute's JSON each time it appears or changes.

    The whole attribute folder is watched: a key that does not exist yet cannot be.
    """
    last: str | None = None
    async for value in metadata.watch(
        "instance/attributes/", recursive=True, timeout_sec=WATCH_TIMEOUT_SEC
    ):
        try:
            attributes = json.loads(value) if value.strip() else {}
        except ValueError:
            log.warning("instance attributes are not JSON; ignoring this answer")
            continue
        raw = attributes.get(JOB_ATTRIBUTE) if isinstance(attributes, dict) else None
        if isinstance(raw, str) and raw.strip() and raw != last:
            last = raw
            await on_job(raw)


def parse_job_attribute(
    raw: str, *, allowed_hosts: frozenset[str], metadata_hosts: frozenset[str]
) -> JobSpec | None:
    """The job in a ``notraining-job`` value (the receiver's JSON body), or None, logged."""
    try:
        fields = decode_body("application/json", raw.encode())
        return parse_job(fields, allowed_hosts=allowed_hosts, metadata_hosts=metadata_hosts)
    except InvalidJobError as exc:
        log.error(
            "attribute %s refused: %s; fix the attribute's JSON",
            JOB_ATTRIBUTE,
            exc,
            extra={"event": "job_refused"},
        )
        return None
