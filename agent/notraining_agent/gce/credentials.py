"""Access tokens of the VM's default service account: one source for every Google call.

:class:`TokenSource` asks the metadata server the agent discovered at boot
(``instance/service-accounts/default/token``) through the agent's own
:class:`~notraining_agent.gce.metadata.MetadataClient`: the same host, no proxy, no
environment read at import time, no google-auth on the boot path. Secret Manager,
Cloud Storage (both ways) and the self-stop permission check take ``token()``;
google-cloud-compute, which wants a google-auth credentials object, gets
:attr:`TokenSource.credentials`: a subclass of google-auth's public
``Credentials`` whose ``refresh`` asks this same source, from the client's thread.
"""

from __future__ import annotations

import asyncio
import datetime
import json
import logging
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from notraining_agent.errors import MetadataError
from notraining_agent.gce.metadata import MetadataClient, MetadataStatusError
from notraining_agent.util.retry import (
    Attempt,
    Backoff,
    Clock,
    RetriesExhausted,
    Transient,
    retry,
    retryable_status,
)

if TYPE_CHECKING:
    from google.auth.credentials import Credentials

log = logging.getLogger(__name__)

TOKEN_PATH = "instance/service-accounts/default/token"  # noqa: S105 - a path, not a secret
REFRESH_MARGIN = 300.0
"""Seconds before expiry at which a cached token is replaced: more than google-auth's
own 3 min 45 s threshold, so a client library never finds our token stale."""
TOKEN_ATTEMPTS = 3
TOKEN_DEADLINE = 30.0
"""Bounds of one refresh: the VM's own metadata server answers in milliseconds."""
TOKEN_BACKOFF = Backoff(initial=0.5, cap=4.0, jitter=False)
"""Between token tries; each VM has its own metadata server, so no herd to spread."""
_UNAVAILABLE = (
    "Could not get an access token for the VM's default service account from the metadata "
    "server at {host} ({cause}). Check that the VM has a service account attached with the "
    "cloud-platform scope and that the metadata server answers."
)


class TokenSource:
    """Default service-account access tokens, cached; concurrent callers share a refresh."""

    def __init__(
        self,
        metadata: MetadataClient,
        *,
        refresh_margin: float = REFRESH_MARGIN,
        clock: Clock | None = None,
    ) -> None:
        self.metadata = metadata
        self._refresh_margin = refresh_margin
        self._clock = clock or Clock()
        self._lock = asyncio.Lock()
        self._token = ""
        self._expires_wall = 0.0
        self._credentials: Credentials | None = None

    @property
    def host(self) -> str:
        """The metadata server the tokens come from (``host:port``)."""
        return self.metadata.host

    async def token(self) -> str:
        """A valid access token; callers arriving during a refresh share its result."""
        return (await self.token_and_expiry())[0]

    async def token_and_expiry(self) -> tuple[str, float]:
        """A valid token and when it expires (epoch seconds)."""
        async with self._lock:
            if not self._token or self._expires_wall - self._clock.wall() <= self._refresh_margin:
                self._token, self._expires_wall = await self._fetch()
                left = self._expires_wall - self._clock.wall()
                log.debug("Access token refreshed; expires in %.0f s", left)
            return self._token, self._expires_wall

    @property
    def credentials(self) -> Credentials:
        """google-auth credentials backed by this source, for google-cloud-compute.

        Read it on the event loop: its ``refresh`` runs in the client's worker thread
        and hands the work back to this loop.
        """
        if self._credentials is None:
            self._credentials = _bridge_class()(self, asyncio.get_running_loop())
        return self._credentials

    async def _fetch(self) -> tuple[str, float]:
        async def attempt(this: Attempt) -> tuple[str, float]:
            try:
                text = await self.metadata.get(TOKEN_PATH, timeout=this.timeout(5.0))
            except MetadataStatusError as exc:
                reason = retryable_status(exc.status)
                if reason is None:
                    raise
                raise Transient(f"{reason}: {exc}") from exc
            except MetadataError as exc:  # no answer: the metadata client says why
                raise Transient(str(exc)) from exc
            return _parse(text, self._clock.wall())

        try:
            return await retry(
                attempt,
                what="Fetching an access token",
                clock=self._clock,
                backoff=TOKEN_BACKOFF,
                attempts=TOKEN_ATTEMPTS,
                deadline=self._clock.monotonic() + TOKEN_DEADLINE,
                logger=log,
            )
        except RetriesExhausted as exc:
            raise MetadataError(_UNAVAILABLE.format(host=self.host, cause=exc)) from exc
        except MetadataError as exc:
            raise MetadataError(_UNAVAILABLE.format(host=self.host, cause=exc)) from exc


def _parse(text: str, now: float) -> tuple[str, float]:
    """The token and its expiry from the metadata server's JSON answer."""
    try:
        body = json.loads(text)
    except ValueError as exc:
        raise Transient("the token answer is not JSON") from exc
    token = body.get("access_token") if isinstance(body, dict) else None
    expires_in = body.get("expires_in") if isinstance(body, dict) else None
    if not isinstance(token, str) or not token or not isinstance(expires_in, int | float):
        raise Transient("the token answer has no access_token or expires_in")
    return token, now + float(expires_in)


def _bridge_class() -> Callable[[TokenSource, asyncio.AbstractEventLoop], Credentials]:
    """The google-auth Credentials subclass, built on first use (google-auth loads only then)."""
    from google.auth import credentials, exceptions  # noqa: PLC0415 - off the boot path

    class SourceCredentials(credentials.Credentials):
        """google-auth credentials whose token comes from a :class:`TokenSource`.

        ``refresh`` ignores the transport it is handed: the token comes from the
        metadata server the agent found, through the agent's own client.
        """

        def __init__(self, source: TokenSource, loop: asyncio.AbstractEventLoop) -> None:
            super().__init__()  # type: ignore[no-untyped-call]
            self._source = source
            self._loop = loop
            self._refresh_lock = threading.Lock()

        def refresh(self, request: Any) -> None:
            if self._loop.is_running() and _on_loop_thread(self._loop):
                raise exceptions.RefreshError(  # type: ignore[no-untyped-call]
                    "SourceCredentials.refresh was called on the event loop; call the "
                    "client from a worker thread (asyncio.to_thread)"
                )
            with self._refresh_lock:
                future = asyncio.run_coroutine_threadsafe(
                    self._source.token_and_expiry(), self._loop
                )
                try:
                    token, expires = future.result(TOKEN_DEADLINE + 5.0)
                except MetadataError as exc:
                    raise exceptions.RefreshError(str(exc)) from exc  # type: ignore[no-untyped-call]
                except TimeoutError as exc:
                    future.cancel()
                    message = "no access token in time"
                    raise exceptions.TransportError(message) from exc  # type: ignore[no-untyped-call]
            self.token = token
            # google-auth compares expiry with a naive UTC datetime.
            self.expiry = datetime.datetime.fromtimestamp(expires, datetime.UTC).replace(
                tzinfo=None
            )

    return SourceCredentials


def _on_loop_thread(loop: asyncio.AbstractEventLoop) -> bool:
    try:
        return asyncio.get_running_loop() is loop
    except RuntimeError:
        return False
