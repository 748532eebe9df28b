"""The agent's record on disk and its reports to Saturno: every report is saved before it is sent.

The lifecycle decides *when* something happens; the ledger makes it durable and
delivers it, so that a restart at any point finds on disk what was promised.
"""

from __future__ import annotations

import logging
from typing import Any

from notraining_agent.config import Settings
from notraining_agent.life import reports
from notraining_agent.life.saturno import SaturnoClient
from notraining_agent.life.store import AgentRecord, Report, ReportKind, StateStore
from notraining_agent.util.retry import Clock

log = logging.getLogger(__name__)


class Ledger:
    """Saves :attr:`record` and delivers its reports, each retried until ``notify_deadline``."""

    def __init__(
        self,
        record: AgentRecord,
        *,
        store: StateStore,
        saturno: SaturnoClient,
        settings: Settings,
        clock: Clock,
    ) -> None:
        self.record = record
        self._store = store
        self._saturno = saturno
        self._settings = settings
        self._clock = clock

    async def commit(self) -> None:
        """Save the record, or raise: for a promise that must not be made unsaved (a 200)."""
        await self._store.save(self.record)

    async def save(self) -> None:
        """Save the record; once a job is taken, a disk that refuses is logged, not fatal.

        Crashing on a full disk lost the end report and, under systemd's restarts,
        kept the VM up; going on from memory still reports and stops it. At worst a
        later restart re-runs from the last state that was saved.
        """
        try:
            await self._store.save(self.record)
        except OSError as exc:
            log.error(
                "cannot save state in %s (%s); going on from memory so the end report still "
                "goes out and the VM stops; free space in state_dir",
                self._store.state_dir,
                exc.strerror or exc,
                extra={"event": "state_save_failed"},
            )

    def new_report(self, kind: ReportKind, body: dict[str, Any]) -> Report:
        """A report to ``register_url`` or ``done_url``, with a fresh idempotency key."""
        url = self._settings.register_url if kind == "register" else self._settings.done_url
        return reports.new_report(kind, url or "", body, self._clock.wall())

    async def deliver(self, report: Report) -> None:
        """Deliver a pending report (retried until notify_deadline) and save how it went."""
        if not report.pending:
            return
        if not report.url:
            log.warning(
                "no %s URL is configured (local mode): %s report not sent",
                report.kind,
                report.kind,
            )
            report.outcome = "skipped"
        else:
            deadline = report.created_at + self._settings.notify_deadline
            report.outcome = await self._saturno.deliver(
                report, deadline=deadline, on_attempt=self._saved
            )
        await self.save()

    async def _saved(self, _report: Report) -> None:
        await self.save()
