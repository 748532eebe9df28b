"""How the VM stops (or deletes) itself through the Compute API.

:func:`request_self_stop` runs once, at the very end. It uses the real
google-cloud-compute client (what the contract asks for), imported only here because
the import costs about 2 s and 100 MB. Sync client calls run in a thread. Whether the
VM may do this at all is asked at boot, lightly, by :mod:`.permissions`.

The stop request's returned operation is polled with a ``ZoneOperationsClient``
built on the same endpoint, never with ``operation.result()``: that one polls
``compute.googleapis.com`` whatever ``api_endpoint`` says.
"""

from __future__ import annotations

import asyncio
import importlib
import logging
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Literal

from notraining_agent.errors import StopError
from notraining_agent.util.retry import (
    Attempt,
    Backoff,
    Clock,
    RetriesExhausted,
    Transient,
    retry,
    retry_after,
    retryable_error,
    retryable_status,
)
from notraining_agent.util.threads import in_daemon_thread

if TYPE_CHECKING:
    from google.auth.credentials import Credentials

log = logging.getLogger(__name__)

PERMISSIONS = {"stop": "compute.instances.stop", "delete": "compute.instances.delete"}
"""The IAM permission each self-stop mode needs."""

STOP_BACKOFF = Backoff(initial=1.0, cap=10.0, jitter=False)
"""Between stop attempts; one VM stopping itself has no herd to spread, so no jitter."""
POLL_INTERVAL = 1.0
"""Pause between two ``wait`` polls that came back early (the server-side wait blocks)."""
CALL_TIMEOUT = 10.0
"""Bound of one stop/delete/wait call. GCE answers a stop in a second or two; a call that
hangs is retried, and three tries with their backoff must fit the cost target of
``shutdown_grace`` + 60 s before the poweroff fallback runs (at 30 s they took 96 s)."""

HINT = (
    "check that the VM's service account has compute.instances.{verb} on this instance "
    "(the terraform module's self-stop role grants it to instances of its template), that "
    "the VM has the compute or cloud-platform scope, and that compute_endpoint ({endpoint}) "
    "is right"
)


async def request_self_stop(
    mode: Literal["stop", "delete"],
    *,
    project: str,
    zone: str,
    name: str,
    endpoint: str,
    credentials: Credentials,
    attempts: int = 3,
    timeout: float = CALL_TIMEOUT,
    wait_timeout: float = 60.0,
    clock: Clock | None = None,
) -> None:
    """Ask GCE to stop or delete this instance; return once the request was accepted.

    Retries 408, 429, 5xx, connection errors, timeouts and token fetch errors, ``attempts``
    tries in all (spaced by ``STOP_BACKOFF`` or Retry-After, capped at its 10 s); ``timeout`` bounds
    each call. Then polls the operation for up to ``wait_timeout`` seconds (0: do not
    wait); a poll failure is only logged, the request having been made.

    Raises:
        StopError: the request was refused (403, 404...), every attempt failed, or
            the operation ended with an error.
    """
    if mode not in PERMISSIONS:
        raise ValueError(f"self-stop mode must be 'stop' or 'delete', not {mode!r}")
    hint = HINT.format(verb=mode, endpoint=endpoint)
    clock = clock or Clock()
    # Importing compute_v1 takes seconds; a thread keeps the loop (and SIGTERM) responsive.
    try:
        compute_v1: Any = await asyncio.to_thread(
            importlib.import_module, "google.cloud.compute_v1"
        )
    except ImportError as exc:
        raise StopError(
            f"Cannot {mode} the VM: google-cloud-compute is not importable ({exc}); "
            "reinstall notraining-agent with its dependencies."
        ) from exc
    try:
        instances, operations = await asyncio.to_thread(
            _clients, compute_v1, credentials, endpoint.rstrip("/")
        )
    except Exception as exc:  # client construction fails only on bad options
        raise StopError(f"Cannot build a Compute client: {_describe(exc)}; {hint}.") from exc
    call = instances.stop_unary if mode == "stop" else instances.delete_unary
    try:
        operation = await _send(
            call,
            mode,
            name=name,
            project=project,
            zone=zone,
            hint=hint,
            attempts=attempts,
            call_timeout=timeout,
            clock=clock,
        )
        log.info(
            "self-stop: %s of instance %s accepted",
            mode,
            name,
            extra={"operation": getattr(operation, "name", None)},
        )
        if wait_timeout > 0:
            await _poll(
                operations,
                operation,
                project=project,
                zone=zone,
                call_timeout=timeout,
                wait_timeout=wait_timeout,
                clock=clock,
            )
    finally:
        await asyncio.to_thread(_close, instances, operations)


async def _send(
    call: Callable[..., Any],
    mode: str,
    *,
    name: str,
    project: str,
    zone: str,
    hint: str,
    attempts: int,
    call_timeout: float,
    clock: Clock,
) -> Any:
    """Make the stop/delete request, retrying what a retry may fix; return the operation."""

    async def attempt(_: Attempt) -> Any:
        try:
            return await _bounded(call, call_timeout, project=project, zone=zone, instance=name)
        except Exception as exc:
            reason = _transient_reason(exc)
            if reason is None:
                raise StopError(
                    f"GCE refused to {mode} instance {name}: {_describe(exc)}; {hint}."
                ) from exc
            raise Transient(reason, retry_after=_retry_after(exc, clock)) from exc

    try:
        return await retry(
            attempt,
            what=f"self-stop: {mode} request",
            clock=clock,
            backoff=STOP_BACKOFF,
            attempts=max(1, attempts),
            logger=log,
        )
    except RetriesExhausted as exc:
        raise StopError(
            f"Could not {mode} instance {name} after {exc.attempts} attempts "
            f"(last: {exc.reason}); {hint}."
        ) from exc


async def _poll(
    operations: Any,
    operation: Any,
    *,
    project: str,
    zone: str,
    call_timeout: float,
    wait_timeout: float,
    clock: Clock,
) -> None:
    """Wait for the operation to be DONE, using the server-side ``wait`` call.

    A poll, not a retry: it asks again until the operation is done or ``wait_timeout``
    passes, and only uses the policy's judgement of which failures to ask through.
    """
    deadline = clock.monotonic() + wait_timeout
    op_name = operation.name
    while not _is_done(operation):
        remaining = deadline - clock.monotonic()
        if remaining <= 0:
            log.warning("self-stop: operation %s not done after %.0f s", op_name, wait_timeout)
            return
        try:
            operation = await _bounded(
                operations.wait,
                min(call_timeout, remaining),
                project=project,
                zone=zone,
                operation=op_name,
            )
        except Exception as exc:
            if _transient_reason(exc) is None:
                # The least-privilege role grants no zoneOperations.get: the request stands.
                log.info("self-stop: cannot poll operation %s (%s)", op_name, _describe(exc))
                return
            log.info("self-stop: polling operation %s failed (%s)", op_name, _describe(exc))
        if not _is_done(operation):
            await clock.sleep(min(POLL_INTERVAL, max(0.0, deadline - clock.monotonic())))
    errors = [e.message for e in operation.error.errors]
    if errors:
        raise StopError(
            f"GCE accepted the request but operation {op_name} failed: {'; '.join(errors)}."
        )
    log.info("self-stop: operation %s done", op_name)


async def _bounded(method: Callable[..., Any], call_timeout: float, **request: str) -> Any:
    """Run one sync client call in a thread, bounded both in the client and here."""
    # The client's own timeout ends the thread; the outer one guards slow trickles.
    return await asyncio.wait_for(
        in_daemon_thread(method, **request, retry=None, timeout=call_timeout), call_timeout + 1.0
    )


def _is_done(operation: Any) -> bool:
    return bool(operation.status == type(operation).Status.DONE)


def _transient_reason(exc: BaseException) -> str | None:
    """The policy's verdict on a client library error: why a retry may fix it, or None.

    google-api-core carries the HTTP status; requests' and google-auth's transport
    errors (token fetch included) are connection failures.
    """
    from google.api_core import exceptions as core  # noqa: PLC0415 - loaded with compute_v1
    from google.auth import exceptions as auth  # noqa: PLC0415 - same

    if isinstance(exc, core.GoogleAPICallError):
        reason = retryable_status(exc.code or 0)
        return None if reason is None else f"{reason} ({_describe(exc)})"
    if isinstance(exc, auth.GoogleAuthError):
        return f"no access token ({_describe(exc)})"
    if isinstance(exc, OSError):  # requests' errors are OSErrors; no local I/O happens here
        return f"connection failed ({_describe(exc)})"
    return retryable_error(exc)


def _retry_after(exc: BaseException, clock: Clock) -> float | None:
    """The Retry-After of the answer behind a google-api-core error, if it had one."""
    response = getattr(exc, "response", None)
    headers = getattr(response, "headers", None)
    value = headers.get("Retry-After") if headers is not None else None
    return retry_after(value if isinstance(value, str) else None, now=clock.wall())


def _describe(exc: BaseException) -> str:
    # api_core's text already carries the status, method and URL.
    return f"{type(exc).__name__}: {exc or 'no answer in time'}"


def _clients(compute_v1: Any, credentials: Credentials, endpoint: str) -> tuple[Any, Any]:
    """Both clients on one endpoint: the operation is polled where the stop was asked."""
    options = {"api_endpoint": endpoint}
    return (
        compute_v1.InstancesClient(credentials=credentials, client_options=options),
        compute_v1.ZoneOperationsClient(credentials=credentials, client_options=options),
    )


def _close(*clients: Any) -> None:
    for client in clients:
        try:
            client.transport.close()
        except Exception:  # closing is tidying; a failure here changes nothing
            log.debug("self-stop: closing a Compute client failed", exc_info=True)


def instance_url(endpoint: str, project: str, zone: str, name: str) -> str:
    """The instance's REST URL under ``endpoint``."""
    return f"{endpoint.rstrip('/')}/compute/v1/projects/{project}/zones/{zone}/instances/{name}"
