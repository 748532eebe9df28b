"""The boot report's facts that are checked, not read: may this VM stop itself, and who is it.

Kept apart from the lifecycle (which only sends what this returns) and from start-up
(which must not wait on these checks before the receiver listens).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import aiohttp

from notraining_agent import agent_version
from notraining_agent.config import Settings
from notraining_agent.errors import MetadataError
from notraining_agent.gce import InstanceInfo
from notraining_agent.gce.compute import can_self_stop
from notraining_agent.gce.credentials import TokenSource
from notraining_agent.gce.metadata import MetadataClient
from notraining_agent.host.systemd import boot_id
from notraining_agent.life.lifecycle import BootFacts

log = logging.getLogger(__name__)


@dataclass
class BootProbe:
    """Gathers :class:`BootFacts` when the lifecycle is about to register.

    ``port`` is set once the receiver is bound (port 0 in the config means any).
    """

    settings: Settings
    instance: InstanceInfo
    metadata: MetadataClient | None
    tokens: TokenSource | None
    session: aiohttp.ClientSession
    port: int = 0

    async def __call__(self) -> BootFacts:
        """The facts; never raises, since the boot report must go out whatever they meet."""
        allowed = await self._can_self_stop()
        return BootFacts(boot_id(), self.port, agent_version(), allowed, await self._identity())

    async def _can_self_stop(self) -> bool | None:
        """True, False, or None (``null`` in the boot report) when IAM could not be asked."""
        settings, instance = self.settings, self.instance
        allowed: bool | None = False
        if self.tokens is not None and instance.project and instance.zone:
            allowed = await can_self_stop(
                settings.self_stop,
                project=instance.project,
                zone=instance.zone,
                name=instance.name,
                endpoint=settings.compute_endpoint,
                token=self.tokens.token,
                session=self.session,
                scopes=instance.scopes,
            )
        if allowed is False and settings.self_stop in ("stop", "delete"):
            log.warning(
                "can_self_stop is false: only Saturno and GCE's max_run_duration can end this VM"
            )
        elif allowed is None:
            log.info(
                "can_self_stop is null in the boot report: not checked, which says nothing about "
                "whether self_stop %s will work",
                settings.self_stop,
            )
        return allowed

    async def _identity(self) -> str | None:
        audience = self.settings.identity_audience
        if not audience or self.metadata is None:
            return None
        try:
            return await self.metadata.identity_token(audience)
        except MetadataError as exc:  # the boot report must go out without it
            log.warning("no identity token for the boot report: %s", exc)
            return None
