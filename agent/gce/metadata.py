"""The GCE metadata server client: one read at boot, long-poll watches, guest attributes.

Host, header and value follow google-auth's ``compute_engine/_metadata.py``; unlike it,
nothing is read from the environment at import time (see :meth:`MetadataClient.from_environ`).
Only answers carrying ``Metadata-Flavor: Google`` count, and proxy variables are ignored:
a proxy or a look-alike server must never be mistaken for the VM's metadata server.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
import time
from collections.abc import AsyncGenerator, Awaitable, Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType, TracebackType

import aiohttp

from agent.errors import MetadataError
from agent.gce import InstanceInfo
from agent.gce.local import local_instance_info

log = logging.getLogger(__name__)

DEFAULT_HOST = "169.254.169.254"  # an address, so no DNS is needed at boot
FLAVOR_HEADER = "Metadata-Flavor"
FLAVOR_VALUE = "Google"
API_ROOT = "/computeMetadata/v1/"
DMI_PRODUCT_NAME = Path("/sys/class/dmi/id/product_name")
GCE_PRODUCT_NAME = "Google Compute Engine"
DEFAULT_REQUEST_TIMEOUT = 5.0
BOOT_DEADLINE = 120.0
PROBE_TIMEOUT = 2.0
BOOT_BACKOFF_FIRST = 0.5
BOOT_BACKOFF_CAP = 8.0
WATCH_TIMEOUT_SEC = 60
WATCH_CLIENT_SLACK = 10.0  # our timeout exceeds the server's timeout_sec by this much
WATCH_BACKOFF_FIRST = 0.5
WATCH_BACKOFF_CAP = 30.0

Sleep = Callable[[float], Awaitable[None]]
Clock = Callable[[], float]

_ZONE = re.compile(r"(?:projects/[^/]+/zones/)?([a-z][a-z0-9]*(?:-[a-z0-9]+)+)")
_GUEST_KEY = re.compile(r"[A-Za-z0-9_-]+/[A-Za-z0-9_-]+")


@dataclass(frozen=True)
class _Answer:
    status: int
    text: str
    etag: str


class MetadataClient:
    """Talks to one metadata server; owns its ``ClientSession`` (``trust_env=False``)."""

    def __init__(
        self,
        host: str = DEFAULT_HOST,
        *,
        request_timeout: float = DEFAULT_REQUEST_TIMEOUT,
        sleep: Sleep = asyncio.sleep,
    ) -> None:
        self.host = _normalise_host(host)
        self.base_url = f"http://{self.host}{API_ROOT}"
        self._request_timeout = request_timeout
        self._sleep = sleep
        self._session: aiohttp.ClientSession | None = None
        self._guest_refusal_logged = False

    @classmethod
    def from_environ(
        cls,
        environ: Mapping[str, str],
        *,
        request_timeout: float = DEFAULT_REQUEST_TIMEOUT,
        sleep: Sleep = asyncio.sleep,
    ) -> MetadataClient:
        """The host google-auth would use: GCE_METADATA_HOST, else GCE_METADATA_IP, else default."""
        host = environ.get("GCE_METADATA_HOST") or environ.get("GCE_METADATA_IP") or DEFAULT_HOST
        return cls(host, request_timeout=request_timeout, sleep=sleep)

    async def __aenter__(self) -> MetadataClient:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    async def close(self) -> None:
        """Close the session (open watches end with it)."""
        if self._session is not None:
            await self._session.close()
            self._session = None

    # -- reads ----------------------------------------------------------------------------

    async def get(
        self,
        path: str,
        *,
        recursive: bool = False,
        params: Mapping[str, str] | None = None,
        timeout: float | None = None,
    ) -> str:
        """The text (or, recursive, JSON text) at ``path`` under ``/computeMetadata/v1/``."""
        query = dict(params or {})
        if recursive:
            query["recursive"] = "true"
            path = path if path.endswith("/") or not path else path + "/"
        answer = await self._request("GET", path, params=query, timeout=timeout)
        return self._checked(answer, path).text

    async def read_instance(self, *, timeout: float | None = None) -> InstanceInfo:
        """Everything the agent needs, in one recursive read of the whole tree."""
        text = await self.get("", recursive=True, params={"alt": "json"}, timeout=timeout)
        try:
            document = json.loads(text)
        except ValueError as exc:
            raise MetadataError(
                f"The metadata server at {self.base_url} answered invalid JSON to a recursive "
                "read; check that GCE_METADATA_HOST names a GCE metadata server."
            ) from exc
        return parse_instance(document, source=self.base_url)

    async def identity_token(self, audience: str) -> str:
        """The VM's Google-signed identity JWT for ``audience`` (``format=full``)."""
        if not audience:
            raise ValueError("identity_token needs a non-empty audience")
        path = "instance/service-accounts/default/identity"
        token = (await self.get(path, params={"audience": audience, "format": "full"})).strip()
        if not token:
            raise MetadataError(
                f"The metadata server at {self.base_url} returned an empty identity token; "
                "check that the VM has a service account attached."
            )
        return token

    async def watch(
        self, path: str, *, recursive: bool = False, timeout_sec: float = WATCH_TIMEOUT_SEC
    ) -> AsyncGenerator[str, None]:
        """Yield the value at ``path`` now, then each time it changes; never gives up.

        Long polls with ``wait_for_change`` and the ETag of every answer, with our own
        timeout longer than ``timeout_sec``. Errors reconnect after a bounded backoff;
        the owner ends the watch by cancelling its task (or closing the generator).
        """
        if recursive and not path.endswith("/"):
            path += "/"
        etag = "0"  # differs from any real ETag, so the first answer comes at once
        failures = 0
        while True:
            params = {
                "wait_for_change": "true",
                "last_etag": etag,
                "timeout_sec": f"{timeout_sec:g}",
            }
            if recursive:
                params["recursive"] = "true"
            try:
                answer = self._checked(
                    await self._request(
                        "GET", path, params=params, timeout=timeout_sec + WATCH_CLIENT_SLACK
                    ),
                    path,
                )
            except MetadataError as exc:
                failures += 1
                delay = min(WATCH_BACKOFF_CAP, WATCH_BACKOFF_FIRST * 2 ** (failures - 1))
                log.warning(
                    "Watch of metadata %s failed (attempt %d): %s Reconnecting in %.1f s.",
                    path,
                    failures,
                    exc,
                    delay,
                )
                await self._sleep(delay)
                continue
            failures = 0
            new_etag = answer.etag or str(hash(answer.text))
            if new_etag != etag:
                etag = new_etag
                yield answer.text

    # -- writes ---------------------------------------------------------------------------

    async def put_guest_attribute(self, key: str, value: str) -> None:
        """Write guest attribute ``namespace/name``; failures are logged, never raised."""
        if not _GUEST_KEY.fullmatch(key):
            raise ValueError(f"guest attribute key must be 'namespace/name', got {key!r}")
        path = f"instance/guest-attributes/{key}"
        try:
            answer = await self._request("PUT", path, data=value.encode())
        except MetadataError as exc:
            log.warning("Could not write guest attribute %s: %s", key, exc)
            return
        if answer.status in (403, 404):
            if self._guest_refusal_logged:
                log.debug("Guest attribute %s refused again (HTTP %d)", key, answer.status)
                return
            self._guest_refusal_logged = True
            log.warning(
                "Guest attributes are disabled on this VM (HTTP %d writing %s): the agent's "
                "state will not be visible from outside. Set the metadata key "
                "enable-guest-attributes=TRUE on the instance or project to turn them on.",
                answer.status,
                key,
            )
        elif answer.status != 200:
            log.warning("Could not write guest attribute %s: HTTP %d", key, answer.status)

    # -- transport ------------------------------------------------------------------------

    async def _request(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, str] | None = None,
        data: bytes | None = None,
        timeout: float | None = None,
    ) -> _Answer:
        url = self.base_url + path.lstrip("/")
        if self._session is None:
            # trust_env=False: HTTP(S)_PROXY must never see metadata requests or tokens.
            self._session = aiohttp.ClientSession(
                trust_env=False, headers={FLAVOR_HEADER: FLAVOR_VALUE}
            )
        client_timeout = aiohttp.ClientTimeout(total=timeout or self._request_timeout)
        try:
            async with self._session.request(
                method,
                url,
                params=params,
                data=data,
                timeout=client_timeout,
                allow_redirects=False,
            ) as response:
                body = await response.read()
                flavor = response.headers.get(FLAVOR_HEADER)
                etag = response.headers.get("ETag", "")
                status = response.status
        except (aiohttp.ClientError, TimeoutError) as exc:
            reason = type(exc).__name__ if isinstance(exc, TimeoutError) else str(exc)
            raise MetadataError(
                f"The metadata server at {url} did not answer ({reason or type(exc).__name__}). "
                f"Check that {self.host} is reachable from this machine (GCE_METADATA_HOST)."
            ) from exc
        if flavor != FLAVOR_VALUE:
            raise MetadataError(
                f"{url} answered HTTP {status} without 'Metadata-Flavor: Google', so it is not "
                "a GCE metadata server; check GCE_METADATA_HOST and that nothing intercepts "
                f"traffic to {self.host}."
            )
        return _Answer(status, body.decode("utf-8", errors="replace"), etag)

    def _checked(self, answer: _Answer, path: str) -> _Answer:
        if answer.status == 200:
            return answer
        detail = re.sub(r"<[^>]+>", " ", answer.text).split()
        hint = "the key does not exist" if answer.status == 404 else "see the server's answer"
        raise MetadataError(
            f"The metadata server at {self.base_url} answered HTTP {answer.status} for {path!r} "
            f"({hint}): {' '.join(detail)[:200]}"
        )


def parse_instance(document: object, *, source: str = "the metadata server") -> InstanceInfo:
    """Turn the recursive JSON of ``/computeMetadata/v1/`` into an :class:`InstanceInfo`."""
    root = _dict(document)
    instance, project = _dict(root.get("instance")), _dict(root.get("project"))
    interfaces = instance.get("networkInterfaces")
    nic = _dict(interfaces[0]) if isinstance(interfaces, list) and interfaces else {}
    access = nic.get("accessConfigs")
    access0 = _dict(access[0]) if isinstance(access, list) and access else {}
    name, internal_ip = _text(instance.get("name")), _text(nic.get("ip"))
    if not name or not internal_ip:
        raise MetadataError(
            f"{source} gave no instance name or internal IP (instance/name, "
            "instance/network-interfaces/0/ip); check that it is a GCE metadata server."
        )
    account = _dict(_dict(instance.get("serviceAccounts")).get("default"))
    scopes = account.get("scopes")
    return InstanceInfo(
        name=name,
        instance_id=_text(instance.get("id")) or None,
        project=_text(project.get("projectId")) or None,
        zone=_short_zone(_text(instance.get("zone"))),
        internal_ip=internal_ip,
        external_ip=_text(access0.get("externalIp")) or None,
        hostname=_text(instance.get("hostname")) or name,
        instance_attributes=_attributes(instance.get("attributes")),
        project_attributes=_attributes(project.get("attributes")),
        service_account_email=_text(account.get("email")) or None,
        scopes=tuple(_text(s) for s in scopes) if isinstance(scopes, list) else (),
        preempted=_text(instance.get("preempted")).upper() == "TRUE",
        on_gce=True,
    )


async def discover(
    environ: Mapping[str, str],
    *,
    dmi_path: Path = DMI_PRODUCT_NAME,
    boot_deadline: float = BOOT_DEADLINE,
    probe_timeout: float = PROBE_TIMEOUT,
    sleep: Sleep = asyncio.sleep,
    clock: Clock = time.monotonic,
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
            info = await _read_until(client, boot_deadline, sleep, clock)
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


async def _read_until(
    client: MetadataClient, boot_deadline: float, sleep: Sleep, clock: Clock
) -> InstanceInfo:
    deadline = clock() + boot_deadline
    attempt = 0
    while True:
        attempt += 1
        remaining = deadline - clock()
        try:
            return await client.read_instance(
                timeout=max(0.1, min(DEFAULT_REQUEST_TIMEOUT, remaining))
            )
        except MetadataError as exc:
            remaining = deadline - clock()
            if remaining <= 0:
                raise MetadataError(
                    f"The metadata server at {client.base_url} did not answer usefully within "
                    f"{boot_deadline:.0f} s ({attempt} attempts; last: {exc}) Check that the "
                    "VM's network is up and 169.254.169.254 is reachable, or that "
                    "GCE_METADATA_HOST names a running metadata server."
                ) from exc
            delay = min(BOOT_BACKOFF_CAP, BOOT_BACKOFF_FIRST * 2 ** (attempt - 1), remaining)
            log.warning(
                "Metadata server not answering yet (attempt %d, %.0f s left): %s "
                "Retrying in %.1f s.",
                attempt,
                remaining,
                exc,
                delay,
            )
            await sleep(delay)


def _says_gce(dmi_path: Path) -> bool:
    # One tiny sysfs read at boot; not worth a thread.
    try:
        return dmi_path.read_text().strip() == GCE_PRODUCT_NAME
    except OSError:
        return False


def _normalise_host(host: str) -> str:
    """``host[:port]`` as GCE_METADATA_HOST takes it; a scheme or a bare IPv6 is tolerated."""
    host = host.strip().removeprefix("http://").rstrip("/") or DEFAULT_HOST
    if host.count(":") > 1 and not host.startswith("["):
        host = f"[{host}]"
    return host


def _short_zone(value: str) -> str | None:
    """``projects/N/zones/us-east1-b`` → ``us-east1-b``; anything else → None, with a warning."""
    if not value:
        return None
    match = _ZONE.fullmatch(value)
    if match is None:
        log.warning(
            "Metadata zone %r is not projects/N/zones/ZONE; continuing without a zone", value
        )
        return None
    return match.group(1)


def _dict(value: object) -> dict[str, object]:
    return value if isinstance(value, dict) else {}


def _text(value: object) -> str:
    return str(value) if isinstance(value, str | int) and not isinstance(value, bool) else ""


def _attributes(value: object) -> Mapping[str, str]:
    return MappingProxyType({str(k): _text(v) for k, v in _dict(value).items()})
