"""How a ``gs://bucket/object`` job URL becomes a Cloud Storage JSON API media request.

``GET {base}/storage/v1/b/{bucket}/o/{object}?alt=media`` with the VM's bearer
token. ``base`` is ``http://$STORAGE_EMULATOR_HOST`` when the caller read that
variable (the google-cloud-storage convention), else Google's endpoint. The
request goes to Google (or the operator's emulator), never to a host the job
chose, so it skips the private-address refusal of http(s) URLs. The API root and
the token header are shared with uploads (:mod:`notraining_agent.job.gcs_upload`):
both directions go the same way.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from urllib.parse import quote

from yarl import URL

from notraining_agent.errors import JobError
from notraining_agent.util.urls import shown_url

GCS_API = "https://storage.googleapis.com"

TokenGetter = Callable[[], Awaitable[str]]
"""How a job gets an access token for gs://: ``gce.credentials.TokenSource.token``."""


def gcs_base(storage_emulator_host: str | None) -> str:
    """The API root: the emulator when ``STORAGE_EMULATOR_HOST`` is set, else Google."""
    if not storage_emulator_host:
        return GCS_API
    host = storage_emulator_host.rstrip("/")
    return host if host.startswith(("http://", "https://")) else f"http://{host}"


def gcs_media_url(url: str, base: str) -> URL:
    """The JSON API media URL for ``gs://bucket/object`` (object name fully quoted)."""
    parsed = URL(url)
    bucket, obj = parsed.raw_host or "", parsed.path.lstrip("/")
    return URL(
        f"{base}/storage/v1/b/{quote(bucket, safe='')}/o/{quote(obj, safe='')}", encoded=True
    ).with_query(alt="media")


async def auth_headers(token: TokenGetter | None, shown: str) -> dict[str, str]:
    """``Authorization: Bearer`` from ``token`` (none without one); JobError naming ``shown``."""
    if token is None:
        return {}
    try:
        return {"Authorization": f"Bearer {await token()}"}
    except Exception as exc:  # the token source raises MetadataError; name the URL here
        raise JobError(
            f"no Cloud Storage token for {shown} ({exc}); check the VM's service account "
            "and its scopes"
        ) from exc


async def gcs_request(
    url: str, *, base: str, token: TokenGetter | None
) -> tuple[URL, dict[str, str]]:
    """The media URL and headers (``Authorization: Bearer`` when a token source is given)."""
    return gcs_media_url(url, base), await auth_headers(token, f"download of {shown_url(url)}")
