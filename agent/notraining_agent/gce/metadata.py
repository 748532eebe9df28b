"""The GCE metadata server client: one read at boot, long-poll watches, guest attributes.

Host, header and value follow google-auth's ``compute_engine/_metadata.py``; unlike it,
nothing is read from the environment at import time (see :meth:`MetadataClient.from_environ`).
Only answers carrying ``Metadata-Flavor: Google`` count, and proxy variables are ignored:
a proxy or a look-alike server must never be mistaken for the VM's metadata server.
Boot discovery (:mod:`.discovery`) and document parsing (:mod:`.instance`)
live apart.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import AsyncGenerator, Mapping
from dataclasses import dataclass
from types import TracebackType

import aiohttp

from notraining_agent.errors import MetadataError
from notraining_agent.gce import InstanceInfo
from notraining_agent.gce.instance import parse_instance
from notraining_agent.util.retry import Backoff, Clock

log = logging.getLogger(__name__)

DEFAULT_HOST = "169.254.169.254"  # an address, so no DNS is needed at boot
FLAVOR_HEADER = "Metadata-Flavor"
FLAVOR_VALUE = "Google"
API_ROOT = "/computeMetadata/v1/"
DEFAULT_REQUEST_TIMEOUT = 5.0
WATCH_TIMEOUT_SEC = 60
WATCH_CLIENT_SLACK = 10.0  # our timeout exceeds the server's timeout_sec by this much
WATCH_BACKOFF = Backoff(initial=0.5, cap=30.0, jitter=False)
"""Between watch reconnections; each VM has its own metadata server, so no herd to spread."""

_GUEST_KEY = re.compile(r"[A-Za-z0-9_-]+/[A-Za-z0-9_-]+")


class MetadataStatusError(MetadataError):
    """The server answered, but not 200; ``status`` lets callers judge a retry."""

    def __init__(self, message: str, status: int) -> None:
        super().__init__(message)
        self.status = status


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
        clock: Clock | None = None,
    ) -> None:
        self.host = _normalise_host(host)
        self.base_url = f"http://{self.host}{API_ROOT}"
        self._request_timeout = request_timeout
        self._clock = clock or Clock()
        self._session: aiohttp.ClientSession | None = None
        self._guest_refusal_logged = False

    @classmethod
    def from_environ(
        cls,
        environ: Mapping[str, str],
        *,
        request_timeout: float = DEFAULT_REQUEST_TIMEOUT,
        clock: Clock | None = None,
    ) -> MetadataClient:
        """The host google-auth would use: GCE_METADATA_HOST, else GCE_METADATA_IP, else default."""
        host = environ.get("GCE_METADATA_HOST") or environ.get("GCE_METADATA_IP") or DEFAULT_HOST
        return cls(host, request_timeout=request_timeout, clock=clock)

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

        This is the one retry loop outside :func:`notraining_agent.util.retry.retry`, on
        purpose: a watch has no attempt count or deadline to exhaust (it lives as long as
        its owner), every failure reconnects whatever it was, and its backoff starts
        again after each success, none of which a bounded retry expresses.
        """
        if recursive and not path.endswith("/"):
            path += "/"
        etag = "0"  # differs from any real ETag, so the first answer comes at once
        failures = 0
        delays = WATCH_BACKOFF.delays()
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
                delay = next(delays)
                log.warning(
                    "Watch of metadata %s failed (attempt %d): %s Reconnecting in %.1f s.",
                    path,
                    failures,
                    exc,
                    delay,
                )
                await self._clock.sleep(delay)
                continue
            if failures:  # back on its feet: the next outage backs off from the start
                failures, delays = 0, WATCH_BACKOFF.delays()
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
        raise MetadataStatusError(
            f"The metadata server at {self.base_url} answered HTTP {answer.status} for {path!r} "
            f"({hint}): {' '.join(detail)[:200]}",
            answer.status,
        )


def _normalise_host(host: str) -> str:
    """``host[:port]`` as GCE_METADATA_HOST takes it; a scheme or a bare IPv6 is tolerated."""
    host = host.strip().removeprefix("http://").rstrip("/") or DEFAULT_HOST
    if host.count(":") > 1 and not host.startswith("["):
        host = f"[{host}]"
    return host
