"""Access tokens of the VM's default service account, through google-auth.

google-auth builds metadata URLs from ``GCE_METADATA_HOST`` read once, when
``google.auth.compute_engine._metadata`` is imported, and refreshes with whatever
transport its caller hands in (proxy variables honoured). Neither suits the agent,
so the credentials built here send every metadata request to the host the agent's
own metadata client uses, through a ``requests`` session that ignores proxies. That
holds for refreshes made by other libraries too (google-cloud-compute), since they
go through :meth:`refresh`.

The agent's own calls (Secret Manager at start, ``testIamPermissions`` for the boot
report, Cloud Storage) take their token from :meth:`TokenSource.token`, which reads
it with the agent's aiohttp metadata client: importing google-auth's compute_engine
module costs 17 MiB and a quarter of a second (it brings ``cryptography`` and
``requests``), more than the whole agent, and it has no async transport. google-auth
is therefore imported only when :attr:`TokenSource.credentials` is first used, which
is google-cloud-compute stopping the VM (issue 12).
"""

from __future__ import annotations

import asyncio
import datetime
import functools
import json
import logging
import os
import time
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from notraining_agent.errors import MetadataError
from notraining_agent.gce.metadata import MetadataClient

log = logging.getLogger(__name__)

REFRESH_MARGIN = 60.0  # seconds before expiry at which a cached token is replaced
REFRESH_TIMEOUT = 60.0  # bounds a whole refresh, its retries included
REFRESH_TRIES = 3
_TOKEN_PATH = "instance/service-accounts/default/token"  # noqa: S105 - a path, not a secret
_METADATA_HOSTS = frozenset(
    {"metadata.google.internal", "metadata.google.internal.", "169.254.169.254"}
)


class TokenSource:
    """Default service-account access tokens, cached and refreshed off the event loop.

    ``host`` is the metadata server (``host:port``); None means what
    :meth:`MetadataClient.from_environ` picks from ``os.environ`` now.
    """

    def __init__(
        self,
        host: str | None = None,
        *,
        refresh_margin: float = REFRESH_MARGIN,
        refresh_timeout: float = REFRESH_TIMEOUT,
    ) -> None:
        self.host = host if host is not None else MetadataClient.from_environ(os.environ).host
        self._refresh_margin = refresh_margin
        self._refresh_timeout = refresh_timeout
        self._lock = asyncio.Lock()
        self._credentials: Any = None
        self._token = ""
        self._expires_at = 0.0  # time.monotonic() when the cached token expires

    @property
    def credentials(self) -> Any:
        """The google-auth credentials, for clients built elsewhere (google-cloud-compute).

        They start with the token :meth:`token` already holds, so stopping the VM needs
        no metadata call while that token is valid (the metadata server may be down).
        """
        if self._credentials is None:
            creds = _credentials_class(self.host)()
            left = self._expires_at - time.monotonic()
            if self._token and left > 0:
                now = datetime.datetime.now(datetime.UTC).replace(tzinfo=None)  # naive UTC
                creds.token = self._token
                creds.expiry = now + datetime.timedelta(seconds=left)
            self._credentials = creds
        return self._credentials

    async def token(self) -> str:
        """A valid access token; callers arriving during a refresh share its result."""
        async with self._lock:
            if self._expires_at - time.monotonic() <= self._refresh_margin:
                await self._fetch()
            return self._token

    async def _fetch(self) -> None:
        """Read a token from the metadata server, as google-auth would, without google-auth."""
        try:
            async with asyncio.timeout(self._refresh_timeout):
                text = await self._read_token()
            answer = json.loads(text)
            token, lifetime = str(answer["access_token"]), float(answer["expires_in"])
        except (MetadataError, TimeoutError, ValueError, KeyError, TypeError) as exc:
            raise MetadataError(
                f"Could not get an access token for the VM's default service account from the "
                f"metadata server at {self.host} ({type(exc).__name__}: {exc}). Check that the VM "
                "has a service account attached with the cloud-platform scope and that the "
                "metadata server answers."
            ) from exc
        self._token = token
        self._expires_at = time.monotonic() + lifetime
        log.debug("Access token fetched; expires in %.0f s", lifetime)

    async def _read_token(self) -> str:
        delay = 0.25
        async with MetadataClient(self.host) as client:
            for attempt in range(REFRESH_TRIES):
                try:
                    return await client.get(_TOKEN_PATH)
                except MetadataError:
                    if attempt == REFRESH_TRIES - 1:
                        raise
                await asyncio.sleep(delay)
                delay *= 2
        raise AssertionError("unreachable")  # pragma: no cover


@functools.cache
def _credentials_class(host: str) -> type[Any]:
    """A compute_engine.Credentials subclass whose metadata requests all go to ``host``."""
    import requests  # noqa: PLC0415 - google-auth's own dependency, loaded with it
    from google.auth import compute_engine  # noqa: PLC0415 - loaded only when used
    from google.auth.compute_engine import _metadata  # noqa: PLC0415 - same
    from google.auth.transport.requests import Request  # noqa: PLC0415 - same

    session = requests.Session()
    session.trust_env = False  # proxy variables must not see metadata requests
    transport = Request(session)

    def routed(url: str, method: str = "GET", **kwargs: Any) -> Any:
        parts = urlsplit(url)
        if parts.path.startswith("/computeMetadata/") and (
            parts.netloc in _METADATA_HOSTS or parts.netloc == _metadata._GCE_METADATA_HOST
        ):
            url = urlunsplit(parts._replace(scheme="http", netloc=host))
        return transport(url, method=method, **kwargs)

    class RoutedCredentials(compute_engine.Credentials):
        """Credentials whose refresh ignores the caller's transport and uses ``routed``."""

        def refresh(self, request: Any) -> None:
            super().refresh(routed)  # type: ignore[no-untyped-call]

        @property
        def universe_domain(self) -> str:
            if not self._universe_domain_cached:
                domain = _metadata.get_universe_domain(routed)  # type: ignore[no-untyped-call]
                self._universe_domain = domain
                self._universe_domain_cached = True
            return str(self._universe_domain)

    return RoutedCredentials
