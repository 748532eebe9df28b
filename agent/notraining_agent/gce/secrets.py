"""Read ``secret_ref`` from Secret Manager with the VM's service-account token.

One REST call (``versions/{v}:access``) with plain aiohttp: no client library to
import at boot. The payload is checked against its CRC32C and never logged.
"""

from __future__ import annotations

import base64
import binascii
import logging
import re

import aiohttp
import google_crc32c

from notraining_agent.errors import ConfigError
from notraining_agent.gce.credentials import TokenSource
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

ATTEMPTS = 3
BACKOFF = Backoff(initial=0.5, jitter=False)
"""Between attempts; one VM reading one secret at boot has no herd to spread."""
SECRET_REF = re.compile(
    r"projects/(?P<project>[a-z0-9][a-z0-9-]{0,61}[a-z0-9]|[0-9]+)"
    r"/secrets/(?P<secret>[A-Za-z0-9_-]{1,255})"
    r"/versions/(?P<version>latest|[0-9]+|[A-Za-z0-9_-]{1,63})"
)


async def access_secret_version(
    ref: str,
    *,
    endpoint: str,
    tokens: TokenSource,
    session: aiohttp.ClientSession,
    timeout: float = 30.0,
    clock: Clock | None = None,
) -> str:
    """The payload of secret version ``ref`` as text (one trailing newline dropped).

    Retries timeouts, connection errors, 408/429/5xx (honouring Retry-After) and
    checksum mismatches, ``ATTEMPTS`` tries in all; every final failure is a
    :class:`ConfigError` naming ``secret_ref``.
    A token that cannot be had raises the :class:`MetadataError` of ``tokens``.
    """
    if not SECRET_REF.fullmatch(ref):
        raise ConfigError(
            f"config: secret_ref {ref!r} is not projects/PROJECT/secrets/SECRET/versions/VERSION"
        )
    url = f"{endpoint.rstrip('/')}/v1/{ref}:access"
    clock = clock or Clock()

    async def attempt(_: Attempt) -> bytes:
        return await _access_once(
            url, ref, tokens=tokens, session=session, timeout=timeout, clock=clock
        )

    try:
        data = await retry(
            attempt,
            what=f"Reading secret {ref}",
            clock=clock,
            backoff=BACKOFF,
            attempts=ATTEMPTS,
            logger=log,
        )
    except RetriesExhausted as exc:
        raise ConfigError(
            f"config: secret_ref {ref}: Secret Manager failed {exc.attempts} times "
            f"({exc.reason}); check that {endpoint} is reachable from the VM."
        ) from None
    log.info("Read secret %s (%d bytes)", ref, len(data))
    return _text(data, ref)


async def _access_once(
    url: str,
    ref: str,
    *,
    tokens: TokenSource,
    session: aiohttp.ClientSession,
    timeout: float,
    clock: Clock,
) -> bytes:
    headers = {"Authorization": f"Bearer {await tokens.token()}"}
    try:
        async with session.get(
            url, headers=headers, timeout=aiohttp.ClientTimeout(total=timeout)
        ) as response:
            status = response.status
            body = await response.json(content_type=None) if status == 200 else None
            transient = transient_answer(status, response.headers, now=clock.wall())
    except ValueError as exc:  # a 200 whose body is not JSON: a broken answer, try again
        raise Transient(f"the answer is not JSON ({exc})") from exc
    except (aiohttp.ClientError, TimeoutError) as exc:
        reason = retryable_error(exc)
        if reason is None:
            raise ConfigError(
                f"config: secret_ref {ref}: cannot call Secret Manager at {url} "
                f"({type(exc).__name__}: {exc}); check secretmanager_endpoint."
            ) from exc
        raise Transient(reason) from exc
    if status in (401, 403):
        raise ConfigError(
            f"config: secret_ref {ref}: Secret Manager refused the VM's service account "
            f"(HTTP {status}); grant it roles/secretmanager.secretAccessor on the secret and "
            "give the VM the cloud-platform scope."
        )
    if status == 404:
        raise ConfigError(
            f"config: secret_ref {ref}: no such secret or version (HTTP 404); check the name, "
            "the project and that the version is enabled."
        )
    if transient is not None:
        raise transient
    if status != 200:
        raise ConfigError(f"config: secret_ref {ref}: Secret Manager answered HTTP {status}.")
    return _payload(body)


def _payload(body: object) -> bytes:
    """The decoded payload, verified against ``dataCrc32c`` when the API sent one."""
    payload = body.get("payload") if isinstance(body, dict) else None
    encoded = payload.get("data") if isinstance(payload, dict) else None
    if not isinstance(encoded, str) or not isinstance(payload, dict):
        raise Transient("the answer had no payload.data")
    try:
        data = base64.b64decode(encoded, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise Transient("payload.data is not base64") from exc
    expected = payload.get("dataCrc32c")
    if expected is not None and str(google_crc32c.value(data)) != str(expected):
        raise Transient("the payload's CRC32C does not match dataCrc32c")
    return data


def _text(data: bytes, ref: str) -> str:
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise ConfigError(f"config: secret_ref {ref}: the payload is not UTF-8 text.") from None
    # `echo secret | gcloud secrets create --data-file=-` stores a newline nobody meant.
    text = text.removesuffix("\n").removesuffix("\r")
    if not text:
        raise ConfigError(f"config: secret_ref {ref}: the secret is empty; add a version.")
    return text
