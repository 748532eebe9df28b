"""Schemathesis against the REAL agent, from the OpenAPI document it serves (issue 3, item 2).

Every operation of ``GET /openapi.json`` gets generated requests, positive and negative,
with Saturno's token and without it; every answer must be documented (status, content
type, headers, body schema) and none may be a 5xx. Afterwards ``/healthz`` must still
answer. The agent is busy with a job whose download crawls, so a generated job that is
valid gets the documented 409 instead of ending the VM; bodies are still decoded and
validated (400 comes before the desk is asked).

One check is excluded, with the reason no schema can fix: ``positive_data_acceptance``
(a schema-valid body can be over ``max_body_bytes``, 413; a URL matching the pattern
can name a private address, and ``arts_path: "["`` matches the JSON-list pattern while
not being JSON: both 400; a busy VM answers 409). ``negative_data_rejection`` runs,
with 413 added to its expected refusals (an invalid 1001-item list is also too big).
The number of cases run is recorded in ``CASES`` and printed.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import aiohttp
import pytest
import pytest_asyncio
import requests
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from notraining_testkit.emulators.suite import AgentProcess, World, start_world
from schemathesis import GenerationMode
from schemathesis.specs.openapi.checks import positive_data_acceptance

from tests.security.harness import JOB_TIMEOUT, boot_agent, saturno_token

pytestmark = [pytest.mark.integration, pytest.mark.asyncio(loop_scope="module")]

EXAMPLES = 150
"""Generated cases per operation and variant (at most): the whole run stays under 60 s."""
EXCLUDED: list[schemathesis.CheckFunction] = [positive_data_acceptance]
CONFIG = schemathesis.Config.from_dict(
    {
        "checks": {
            "negative_data_rejection": {
                "expected-statuses": [400, 401, 403, 404, 405, 406, 409, 413, 415, 422, 428, 429]
            }
        }
    }
)
CASES: Counter[str] = Counter()
STATUSES: Counter[int] = Counter()


@dataclass
class Busy:
    """An agent holding a job whose zip crawls at 10 bytes a second."""

    world: World
    process: AgentProcess
    url: str
    token: str


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def busy(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Busy]:
    """The real agent, busy: a valid generated job gets 409, not the VM."""
    world = await start_world(attributes={"notraining-self-stop": "none"}, shutdown_grace="0s")
    world.art.add_file("/slow/package.zip", world.art.package.zip_bytes)
    world.art.throttle(10, paths=["/slow/package.zip"])
    process: AgentProcess | None = None
    try:
        process, url = await boot_agent(world, tmp_path_factory.mktemp("schemathesis"))
        token = saturno_token(world)
        job = {"ntd_transaction_id": "holder", "zip_art": world.url("art") + "/slow/package.zip"}
        async with (
            aiohttp.ClientSession() as session,
            session.post(
                f"{url}/receiver_no_training/", json=job, headers={"Authorization": token}
            ) as taken,
        ):
            assert taken.status == 200
        await process.wait_for_log(lambda line: line.get("event") == "job_started", JOB_TIMEOUT)
        yield Busy(world, process, url, token)
    finally:
        if process is not None:
            await process.close()
        await world.close()


def _run_operation(busy: Busy, method: str, path: str, variant: str) -> int:
    """Generate and check cases for one operation; return how many ran."""
    schema = schemathesis.openapi.from_url(f"{busy.url}/openapi.json", config=CONFIG)
    operation = schema[path][method.upper()]
    mode = GenerationMode.NEGATIVE if variant == "negative" else GenerationMode.POSITIVE
    headers = {} if variant == "no-token" else {"Authorization": busy.token}
    ran = 0
    session = requests.Session()

    @settings(
        max_examples=EXAMPLES,
        deadline=None,
        phases=[Phase.explicit, Phase.generate, Phase.shrink],
        suppress_health_check=list(HealthCheck),
        database=None,
    )
    @given(operation.as_strategy(mode, headers=headers or None))
    def check(case: schemathesis.Case[Any]) -> None:
        nonlocal ran
        ran += 1
        response = case.call_and_validate(
            base_url=busy.url, session=session, excluded_checks=EXCLUDED, timeout=10
        )
        STATUSES[response.status_code] += 1
        assert response.status_code < 500

    try:
        check()
    finally:
        session.close()
    return ran


# The GET operations take no parameters and no body: there is nothing to negate.
RUNS = [
    (method, path, variant)
    for method, path in [("post", "/receiver_no_training/"), ("post", "/receiver_no_training")]
    for variant in ("positive", "negative", "no-token")
] + [
    (method, path, variant)
    for method, path in [("get", "/status"), ("get", "/healthz"), ("get", "/openapi.json")]
    for variant in ("positive", "no-token")
]


@pytest.mark.parametrize(("method", "path", "variant"), RUNS)
async def test_every_generated_request_gets_a_documented_answer(
    busy: Busy, method: str, path: str, variant: str
) -> None:
    """No 5xx, and status, content type, headers and body match the served document."""
    ran = await asyncio.to_thread(_run_operation, busy, method, path, variant)
    CASES[f"{method.upper()} {path} {variant}"] = ran
    assert ran > 0


async def test_the_agent_still_answers_and_logged_no_fault(busy: Busy) -> None:
    """After every generated case, /healthz answers and no 5xx or ERROR line was logged."""
    async with (
        aiohttp.ClientSession() as session,
        session.get(f"{busy.url}/healthz") as answer,
    ):
        assert answer.status == 200
        assert await answer.json() == {"status": "ok", "state": "busy"}
    statuses = [int(line["http_status"]) for line in busy.process.lines if "http_status" in line]
    assert len(statuses) >= sum(CASES.values()) // 2 and max(statuses) < 500
    assert not [line for line in busy.process.lines if line.get("severity") == "ERROR"]
    total = sum(CASES.values())
    print(f"\nschemathesis: {total} cases, answers {dict(sorted(STATUSES.items()))}: {dict(CASES)}")
    assert total >= 6 * EXAMPLES // 2  # the six POST runs, even if some examples repeat
