"""Reports to Saturno, retried until delivered or until ``notify_deadline`` (contract section 3).

Retried: 408, 429, every 5xx, connection errors and timeouts, with exponential
backoff and full jitter (1 s doubling, capped at 60 s). Final: any other 4xx.
Either way the caller's lifecycle goes on: an undelivered report never keeps a
VM up. Each try carries the report's own ``Idempotency-Key``.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable

import aiohttp

from notraining_agent.life.store import Report, ReportOutcome
from notraining_agent.logs import utc_iso
from notraining_agent.util.retry import Backoff, Clock

log = logging.getLogger(__name__)

RETRY_STATUSES = frozenset({408, 429})
ATTEMPT_TIMEOUT = 30.0
SATURNO_BACKOFF = Backoff(initial=1.0, factor=2.0, cap=60.0, jitter=True)


def retryable(status: int) -> bool:
    """Whether an answer with ``status`` is worth another try."""
    return status in RETRY_STATUSES or status >= 500


class SaturnoClient:
    """Delivers :class:`Report` objects; ``authorization()`` gives a fresh header per call."""

    def __init__(
        self,
        session: aiohttp.ClientSession,
        authorization: Callable[[], str],
        *,
        clock: Clock,
        backoff: Backoff = SATURNO_BACKOFF,
        attempt_timeout: float = ATTEMPT_TIMEOUT,
    ) -> None:
        self._session = session
        self._authorization = authorization
        self._clock = clock
        self._backoff = backoff
        self._attempt_timeout = attempt_timeout

    async def deliver(
        self,
        report: Report,
        *,
        deadline: float,
        on_attempt: Callable[[Report], Awaitable[None]] | None = None,
    ) -> ReportOutcome:
        """Try until delivered, refused or ``deadline`` (wall clock); at least one try.

        ``on_attempt`` runs after each try so the caller can persist the count.
        """
        delays = self._backoff.delays()
        extra = {"event": "report", "report": report.kind, "idempotency_key": report.key}
        while True:
            report.attempts += 1
            remaining = deadline - self._clock.wall()
            status, problem = await self._post(
                report, max(1.0, min(self._attempt_timeout, remaining))
            )
            if on_attempt is not None:
                await on_attempt(report)
            if status is not None and 200 <= status < 300:
                log.info(
                    "%s report delivered (attempt %d)", report.kind, report.attempts, extra=extra
                )
                return "delivered"
            if status is not None and not retryable(status):
                log.error(
                    "%s report refused by Saturno with HTTP %d (%s); not retrying: check "
                    "the URL and saturno_token",
                    report.kind,
                    status,
                    problem,
                    extra=extra,
                )
                return "refused"
            delay = next(delays)
            remaining = deadline - self._clock.wall()
            if remaining <= 0:
                log.error(
                    "%s report not delivered after %d attempts (%s); notify_deadline passed, "
                    "giving up",
                    report.kind,
                    report.attempts,
                    problem,
                    extra=extra,
                )
                return "expired"
            log.warning(
                "%s report attempt %d failed (%s); retrying in %.1f s until %s",
                report.kind,
                report.attempts,
                problem,
                min(delay, remaining),
                utc_iso(deadline),
                extra=extra,
            )
            await self._clock.sleep(min(delay, remaining))

    async def _post(self, report: Report, timeout: float) -> tuple[int | None, str]:
        headers = {
            "Authorization": self._authorization(),
            "Idempotency-Key": report.key,
            "Content-Type": "application/json",
        }
        try:
            async with self._session.post(
                report.url,
                json=report.body,
                headers=headers,
                timeout=aiohttp.ClientTimeout(total=timeout),
                allow_redirects=False,
            ) as response:
                text = (await response.content.read(300)).decode("utf-8", "replace")
                return response.status, f"HTTP {response.status}: {text.strip()[:200]}"
        except TimeoutError:
            return None, f"no answer within {timeout:.0f} s"
        except aiohttp.ClientError as exc:
            return None, f"{type(exc).__name__}: {exc}"
