"""Makes the agent's state visible outside: systemd's STATUS, the guest attribute, the watchdog."""

from __future__ import annotations

import asyncio

from notraining_agent.gce.metadata import MetadataClient
from notraining_agent.host.systemd import Notifier
from notraining_agent.life.states import AgentState

GUEST_ATTRIBUTE = "notraining/state"


class StatePublisher:
    """Publishes each state change; the guest attribute writer keeps only the latest."""

    def __init__(self, notifier: Notifier, metadata: MetadataClient | None) -> None:
        self._notifier = notifier
        self._metadata = metadata
        self._latest = AgentState.STARTING
        self._changed = asyncio.Event()

    def publish(self, state: AgentState) -> None:
        """Show ``state`` in ``systemctl status`` now and queue it for the guest attribute."""
        self._latest = state
        self._notifier.status(state.value)
        self._changed.set()

    async def write_guest_attribute(self) -> None:
        """Owned task: PUT the latest state on every change; bursts collapse to the last one."""
        if self._metadata is None:
            return
        while True:
            await self._changed.wait()
            self._changed.clear()
            await self._metadata.put_guest_attribute(GUEST_ATTRIBUTE, self._latest.value)

    async def keep_watchdog_fed(self) -> None:
        """Owned task: WATCHDOG=1 every half watchdog interval, when systemd asks for it."""
        interval = self._notifier.watchdog_interval
        if not interval:
            return
        while True:
            self._notifier.watchdog()
            await asyncio.sleep(interval)
