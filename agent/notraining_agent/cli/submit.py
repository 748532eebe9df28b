"""``notraining-agent submit``: post a job the way Saturno does, for operators and the demo.

By default the body is form-encoded exactly like the seed's
``requests.post(url, headers={"Authorization": TOKEN}, data=payload)``:
``arts_path`` as repeated keys. ``--json`` sends JSON instead.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import aiohttp

from notraining_agent.errors import ConfigError

RECEIVER_PATH = "/receiver_no_training/"


@dataclass(frozen=True)
class Answer:
    """The receiver's answer: status code and decoded JSON body (or raw text)."""

    status: int
    body: Any


def load_job(text: str) -> dict[str, Any]:
    """The job JSON an operator wrote; ConfigError when it is not a JSON object."""
    try:
        data = json.loads(text)
    except ValueError as exc:
        raise ConfigError(
            f"the job file is not JSON ({exc}); give the receiver's JSON body"
        ) from exc
    if not isinstance(data, dict):
        raise ConfigError("the job file must hold one JSON object (the receiver's body)")
    return data


def form_fields(job: Mapping[str, Any]) -> list[tuple[str, str]]:
    """The job as ``requests`` would form-encode it: lists become repeated keys."""
    fields: list[tuple[str, str]] = []
    for key, value in job.items():
        if value is None:
            continue
        values = value if isinstance(value, list) else [value]
        fields.extend((key, str(item)) for item in values if item is not None)
    return fields


async def submit(
    url: str,
    job: Mapping[str, Any],
    *,
    authorization: str,
    as_json: bool = False,
    timeout: float = 30.0,
) -> Answer:
    """POST ``job`` to the receiver at ``url`` (its base URL or the full receiver URL)."""
    target = (
        url if url.rstrip("/").endswith("receiver_no_training") else url.rstrip("/") + RECEIVER_PATH
    )
    headers = {"Authorization": authorization}
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=timeout)) as session:
        if as_json:
            request = session.post(target, json=dict(job), headers=headers)
        else:
            request = session.post(target, data=form_fields(job), headers=headers)
        async with request as response:
            return await _answer(response)


async def get_status(url: str, *, authorization: str, timeout: float = 10.0) -> Answer:
    """GET ``/status`` from the agent at ``url``."""
    async with (
        aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=timeout)) as session,
        session.get(
            url.rstrip("/") + "/status", headers={"Authorization": authorization}
        ) as response,
    ):
        return await _answer(response)


async def _answer(response: aiohttp.ClientResponse) -> Answer:
    """The status and JSON body; a body that is not JSON (a proxy's page) stays text."""
    text = await response.text()
    try:
        return Answer(response.status, json.loads(text))
    except ValueError:
        return Answer(response.status, text)
