"""How the VM stops (or deletes) itself through the Compute API, and whether it may.

Two calls with different budgets:

- :func:`can_self_stop` runs at boot. It must stay fast and light, so it asks
  ``testIamPermissions`` with plain aiohttp and never imports ``compute_v1``.
- :func:`request_self_stop` runs once, at the very end. It uses the real
  google-cloud-compute client (what the contract asks for), imported only here
  because the import costs about 2 s and 100 MB. Sync client calls run in a thread.

The stop request's returned operation is polled with a ``ZoneOperationsClient``
built on the same endpoint, never with ``operation.result()``: that one polls
``compute.googleapis.com`` whatever ``api_endpoint`` says.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import importlib
import logging
import threading
from collections.abc import Awaitable, Callable, Sequence
from typing import TYPE_CHECKING, Any, Literal

import aiohttp

from notraining_agent.errors import StopError
from notraining_agent.util.retry import Backoff, Clock

if TYPE_CHECKING:
    from google.auth.credentials import Credentials

log = logging.getLogger(__name__)

COMPUTE_SCOPES = frozenset(
    {
        "https://www.googleapis.com/auth/compute",
        "https://www.googleapis.com/auth/cloud-platform",
    }
)
"""OAuth scopes that let the default service account's token call instances.stop/delete."""

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

_HINT = (
    "check that the VM's service account has compute.instances.{verb} on this instance "
    "(the terraform module's self-stop role grants it to instances of its template), that "
    "the VM has the compute or cloud-platform scope, and that compute_endpoint ({endpoint}) "
    "is right"
)


async def can_self_stop(
    mode: str,
    *,
    project: str,
    zone: str,
    name: str,
    endpoint: str,
    token: Callable[[], Awaitable[str]],
    session: aiohttp.ClientSession,
    scopes: Sequence[str],
    timeout: float = 10.0,
) -> bool | None:
    """Whether the service account may stop (``delete`` mode: delete) this instance.

    ``True`` or ``False`` when ``testIamPermissions`` answered, or when the answer is
    certain without it (no compute scope, no instance): ``False``. ``None`` when it could
    not be checked. That is the usual answer under the terraform module's role:
    Compute's ``testIamPermissions`` requires ``compute.instances.list`` on the project
    (the caller must be able to list the collection), and the role grants only stop or
    delete on the template's instances, never a list of every VM in the project. A 403
    is therefore "unknown", not "no".

    ``poweroff`` and ``none`` are checked as ``stop``: the boot report's
    ``can_self_stop`` tells Saturno whether the VM *could* end itself through the API.
    Never raises: the boot report must go out whatever this check meets.
    """
    permission = PERMISSIONS.get(mode, PERMISSIONS["stop"])
    if mode not in (*PERMISSIONS, "poweroff", "none"):
        log.warning("can_self_stop: unknown self_stop mode %r, answering false", mode)
        return False
    if not (project and zone and name):
        log.info("can_self_stop: no project, zone or instance name (local mode?): false")
        return False
    if not COMPUTE_SCOPES.intersection(scopes):
        log.warning(
            "can_self_stop: the VM's scopes include neither compute nor cloud-platform; "
            "add one to the instance so it can stop itself"
        )
        return False
    url = _instance_url(endpoint, project, zone, name) + "/testIamPermissions"
    hint = _HINT.format(verb=permission.rsplit(".", 1)[1], endpoint=endpoint)
    return await _test_permission(
        url, permission, token=token, session=session, timeout=timeout, hint=hint
    )


async def _test_permission(
    url: str,
    permission: str,
    *,
    token: Callable[[], Awaitable[str]],
    session: aiohttp.ClientSession,
    timeout: float,
    hint: str,
) -> bool | None:
    """Ask ``testIamPermissions`` for ``permission``: its answer, or None when there is none."""
    try:
        headers = {"Authorization": f"Bearer {await token()}"}
        async with session.post(
            url,
            json={"permissions": [permission]},
            headers=headers,
            timeout=aiohttp.ClientTimeout(total=timeout),
        ) as resp:
            if resp.status == 403:
                _log_unchecked(await resp.text(), permission)
                return None
            if resp.status != 200:
                log.warning(
                    "can_self_stop: testIamPermissions answered HTTP %d, so it is unknown; %s",
                    resp.status,
                    hint,
                )
                return None
            body = await resp.json(content_type=None)
    except Exception as exc:  # the check must never break the boot report
        log.warning(
            "can_self_stop: testIamPermissions failed (%s: %s), so it is unknown",
            type(exc).__name__,
            exc,
        )
        return None
    granted = body.get("permissions", []) if isinstance(body, dict) else []
    return isinstance(granted, list) and permission in granted


LIST_PERMISSION = "compute.instances.list"
"""What Compute's ``instances.testIamPermissions`` itself requires, on the project."""


def _log_unchecked(text: str, permission: str) -> None:
    """Say why a 403 leaves the answer unknown: INFO for the module's role, else WARNING."""
    reason = text.strip().replace("\n", " ")[:300]
    if LIST_PERMISSION in text:
        log.info(
            "can_self_stop is unknown: testIamPermissions needs %s on the project, which the "
            "terraform module's role leaves out on purpose (it would let the VM list every "
            "instance); %s itself is not tested",
            LIST_PERMISSION,
            permission,
        )
        return
    log.warning("can_self_stop is unknown: testIamPermissions answered 403 (%s)", reason)


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

    Retries 408, 429, 5xx, connection errors, timeouts and token fetch errors up to
    ``attempts`` times (spaced by ``STOP_BACKOFF``); ``timeout`` bounds
    each call. Then polls the operation for up to ``wait_timeout`` seconds (0: do not
    wait); a poll failure is only logged, the request having been made.

    Raises:
        StopError: the request was refused (403, 404...), every attempt failed, or
            the operation ended with an error.
    """
    if mode not in PERMISSIONS:
        raise ValueError(f"self-stop mode must be 'stop' or 'delete', not {mode!r}")
    hint = _HINT.format(verb=mode, endpoint=endpoint)
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
    delays = STOP_BACKOFF.delays()
    for attempt in range(1, max(1, attempts) + 1):
        try:
            return await _bounded(call, call_timeout, project=project, zone=zone, instance=name)
        except Exception as exc:
            if not _is_transient(exc):
                raise StopError(
                    f"GCE refused to {mode} instance {name}: {_describe(exc)}; {hint}."
                ) from exc
            if attempt >= attempts:
                raise StopError(
                    f"Could not {mode} instance {name} after {attempts} attempts "
                    f"(last: {_describe(exc)}); {hint}."
                ) from exc
            delay = next(delays)
            log.warning(
                "self-stop: %s request failed, attempt %d of %d (%s); retrying in %.0f s",
                mode,
                attempt,
                attempts,
                _describe(exc),
                delay,
            )
            await clock.sleep(delay)
    raise AssertionError("unreachable: the last attempt returns or raises")


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
    """Wait for the operation to be DONE, using the server-side ``wait`` call."""
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
            if not _is_transient(exc):
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
        _in_daemon_thread(method, **request, retry=None, timeout=call_timeout), call_timeout + 1.0
    )


async def _in_daemon_thread(func: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Any:
    """``asyncio.to_thread`` on a daemon thread of its own, for calls that may hang.

    A SIGTERM usually comes while a stop or wait call is in flight (GCE stopping the
    VM is what sends it). ``asyncio.run`` joins the default executor's threads
    before the process may exit, so a call in ``to_thread`` held the exit until its
    timeout: seconds of VM time, or systemd's SIGKILL. A daemon thread is not waited for.
    """
    loop = asyncio.get_running_loop()
    future: asyncio.Future[Any] = loop.create_future()
    context = contextvars.copy_context()

    def settle(result: Any, error: BaseException | None) -> None:
        if future.done():  # cancelled or timed out meanwhile
            return
        if error is not None:
            future.set_exception(error)
        else:
            future.set_result(result)

    def work() -> None:
        result, error = None, None
        try:
            result = context.run(func, *args, **kwargs)
        except BaseException as exc:  # handed to the awaiting coroutine, not lost
            error = exc
        # The loop may have closed while the call hung: then nobody is waiting.
        with contextlib.suppress(RuntimeError):
            loop.call_soon_threadsafe(settle, result, error)

    threading.Thread(target=work, name="compute-call", daemon=True).start()
    return await future


def _is_done(operation: Any) -> bool:
    return bool(operation.status == type(operation).Status.DONE)


def _is_transient(exc: BaseException) -> bool:
    """True for what a retry may fix: 408, 429, 5xx, connection errors, timeouts."""
    from google.api_core import exceptions as core  # noqa: PLC0415 - loaded with compute_v1
    from google.auth import exceptions as auth  # noqa: PLC0415 - same

    if isinstance(exc, core.GoogleAPICallError):
        return exc.code in (408, 429) or (exc.code or 0) >= 500
    # requests' errors are OSErrors; token fetch errors come from the metadata server.
    return isinstance(exc, TimeoutError | OSError | auth.GoogleAuthError)


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


def _instance_url(endpoint: str, project: str, zone: str, name: str) -> str:
    return f"{endpoint.rstrip('/')}/compute/v1/projects/{project}/zones/{zone}/instances/{name}"
