"""Whether this VM may stop itself: ``instances.testIamPermissions`` at boot.

It runs before the boot report, so it must stay fast and light: plain aiohttp, and
never ``compute_v1`` (which :mod:`.compute` imports only when the VM is being stopped).
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Sequence

import aiohttp

from notraining_agent.gce.compute import HINT, PERMISSIONS, instance_url

log = logging.getLogger(__name__)

COMPUTE_SCOPES = frozenset(
    {
        "https://www.googleapis.com/auth/compute",
        "https://www.googleapis.com/auth/cloud-platform",
    }
)
"""OAuth scopes that let the default service account's token call instances.stop/delete."""


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
    url = instance_url(endpoint, project, zone, name) + "/testIamPermissions"
    hint = HINT.format(verb=permission.rsplit(".", 1)[1], endpoint=endpoint)
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
