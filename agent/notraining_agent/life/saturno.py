"""Reports to Saturno, retried until delivered or until ``notify_deadline`` (contract section 3).

Retried: 408, 429, every 5xx, connection errors and timeouts, with exponential
backoff and full jitter (1 s doubling, capped at 60 s), or after what ``Retry-After``
asks, never past the deadline; all by the one policy of
:mod:`notraining_agent.util.retry`. Final: any other answer (4xx, 3xx).
Either way the caller's lifecycle goes on: an undelivered report never keeps a
VM up. Each try carries the report's own ``Idempotency-Key``.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable

import aiohttp

from notraining_agent.life.store import Report, ReportOutcome
from notraining_agent.logs import utc_iso
from notraining_agent.util.retry import (
    Attempt,
    Backoff,
    Clock,
    RetriesExhausted,
    Transient,
    retry,
    retryable_error,
    transient_answer,
)

log = logging.getLogger(__name__)

ATTEMPT_TIMEOUT = 30.0
SATURNO_BACKOFF = Backoff(initial=1.0, factor=2.0, cap=60.0, jitter=True)


class _Refused(Exception):  # noqa: N818 - Saturno's final answer, turned into "refused"
    """A non-retryable answer; its message is the status and the start of the body."""


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
        extra = {"event": "report", "report": report.kind, "idempotency_key": report.key}

        async def attempt(this: Attempt) -> None:
            report.attempts += 1
            try:
                await self._post(report, this.timeout(self._attempt_timeout, shortest=1.0))
            finally:
                if on_attempt is not None:
                    await on_attempt(report)

        # The policy counts on the monotonic clock; notify_deadline is wall time.
        until = self._clock.monotonic() + (deadline - self._clock.wall())
        try:
            await retry(
                attempt,
                what=f"{report.kind} report (until {utc_iso(deadline)})",
                clock=self._clock,
                backoff=self._backoff,
                deadline=until,
                logger=log,
                extra=extra,
            )
        except _Refused as exc:
            log.error(
                "%s report refused by Saturno with %s; not retrying: check the URL and "
                "saturno_token",
                report.kind,
                exc,
                extra=extra,
            )
            return "refused"
        except RetriesExhausted as exc:
            log.error(
                "%s report not delivered after %d attempts (%s); notify_deadline passed, giving up",
                report.kind,
                exc.attempts,
                exc.reason,
                extra=extra,
            )
            return "expired"
        log.info("%s report delivered (attempt %d)", report.kind, report.attempts, extra=extra)
        return "delivered"

    async def _post(self, report: Report, timeout: float) -> None:
        """One try: returns on 2xx, raises Transient or _Refused otherwise."""
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
                if 200 <= response.status < 300:
                    return
                text = (await response.content.read(300)).decode("utf-8", "replace")
                problem = f"HTTP {response.status}: {text.strip()[:200]}"
                transient = transient_answer(
                    response.status, response.headers, now=self._clock.wall()
                )
        except (aiohttp.ClientError, TimeoutError) as exc:
            reason = retryable_error(exc)
            if reason is None:
                raise _Refused(f"{type(exc).__name__}: {exc}") from exc
            raise Transient(reason) from exc
        if transient is None:
            raise _Refused(problem)
        raise Transient(problem, retry_after=transient.retry_after)
