"""gs:// URLs become Cloud Storage JSON API media requests, emulator or Google."""

from __future__ import annotations

import pytest
from notraining_agent.errors import JobError
from notraining_agent.job.gcs_download import GCS_API, gcs_base, gcs_media_url, gcs_request


def test_base() -> None:
    """STORAGE_EMULATOR_HOST wins (with or without scheme); else Google's endpoint."""
    assert gcs_base(None) == GCS_API
    assert gcs_base("") == GCS_API
    assert gcs_base("127.0.0.1:9023") == "http://127.0.0.1:9023"
    assert gcs_base("http://localhost:9023/") == "http://localhost:9023"


def test_media_url_quotes_the_object() -> None:
    """Slashes, spaces, unicode and an escaped ? in the object name are quoted once."""
    url = gcs_media_url("gs://bucket/a dir/é%3F.png", "http://e:1")
    assert str(url) == "http://e:1/storage/v1/b/bucket/o/a%20dir%2F%C3%A9%3F.png?alt=media"


async def test_request_headers() -> None:
    """A token source gives a Bearer header; none gives no header; a failing one a JobError."""

    async def token() -> str:
        return "t0k"

    async def broken() -> str:
        raise RuntimeError("no credentials")

    _, headers = await gcs_request("gs://b/o", base=GCS_API, token=token)
    assert headers == {"Authorization": "Bearer t0k"}
    assert (await gcs_request("gs://b/o", base=GCS_API, token=None))[1] == {}
    with pytest.raises(JobError, match="service account"):
        await gcs_request("gs://b/o", base=GCS_API, token=broken)
