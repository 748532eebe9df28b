"""Access tokens of the VM's default service account, through google-auth.

google-auth builds metadata URLs from ``GCE_METADATA_HOST`` read once, when
``google.auth.compute_engine._metadata`` is imported, and refreshes with whatever
transport its caller hands in (proxy variables honoured). Neither suits the agent,
so the credentials built here send every metadata request to the host the agent's
own metadata client uses, through a ``requests`` session that ignores proxies. That
holds for refreshes made by other libraries too (google-cloud-compute), since they
go through :meth:`refresh`. google-auth is imported only when a token is first needed.
"""

from __future__ import annotations

import asyncio
import datetime
import functools
import logging
import os
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from notraining_agent.errors import MetadataError
from notraining_agent.gce.metadata import MetadataClient

log = logging.getLogger(__name__)

REFRESH_MARGIN = 60.0  # seconds before expiry at which a cached token is replaced
REFRESH_TIMEOUT = 60.0  # google-auth retries inside; this bounds the whole refresh
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

    @property
    def credentials(self) -> Any:
        """The google-auth credentials, for clients built elsewhere (google-cloud-compute)."""
        if self._credentials is None:
            self._credentials = _credentials_class(self.host)()
        return self._credentials

    async def token(self) -> str:
        """A valid access token; callers arriving during a refresh share its result."""
        async with self._lock:
            if not self._fresh():
                await self._refresh()
            token: str = self.credentials.token
            return token

    def _fresh(self) -> bool:
        creds = self.credentials
        if not creds.token or creds.expiry is None:
            return False
        now = datetime.datetime.now(datetime.UTC).replace(tzinfo=None)  # google-auth: naive UTC
        return bool((creds.expiry - now).total_seconds() > self._refresh_margin)

    async def _refresh(self) -> None:
        from google.auth import exceptions  # noqa: PLC0415 - google-auth loads only when used

        creds = self.credentials
        try:
            await asyncio.wait_for(
                asyncio.to_thread(_refresh_blocking, creds), self._refresh_timeout
            )
        except (exceptions.GoogleAuthError, TimeoutError) as exc:
            raise MetadataError(
                f"Could not get an access token for the VM's default service account from the "
                f"metadata server at {self.host} ({type(exc).__name__}: {exc}). Check that the VM "
                "has a service account attached with the cloud-platform scope and that the "
                "metadata server answers."
            ) from exc
        log.debug("Access token refreshed; expires %s", creds.expiry)


def _refresh_blocking(creds: Any) -> None:
    """Runs in a thread: refresh, then read universe_domain so nobody fetches it on the loop."""
    creds.refresh(None)
    _ = creds.universe_domain


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
