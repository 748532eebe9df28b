"""The shipped OpenAPI document is valid, and it and the receiver agree (issue 3, item 1)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from importlib import resources
from typing import Any

import jsonschema  # type: ignore[import-untyped]  # schemathesis brings it; no stubs in the venv
import pytest
import schemathesis
from aiohttp import web
from aiohttp.test_utils import TestClient
from notraining_agent.config import Secret, Settings
from notraining_agent.http.auth import Authenticator
from notraining_agent.http.receiver import build_app
from notraining_agent.job.spec import JobSpec
from notraining_agent.life.states import AgentState, JobState, Offer
from schemathesis.core.result import Ok
from schemathesis.specs.openapi.definitions import OPENAPI_31

TOKEN = "Hq3Lx8Vz1Rt6Yw0Pn5Mc2Kb7Jf4Gd9Sa-static"
AUTH = {"Authorization": TOKEN}
JSON_HEADERS = {**AUTH, "Content-Type": "application/json"}
LIMIT = 2048
RECEIVER = "/receiver_no_training/"
JOB = {"ntd_transaction_id": "t-1", "zip_art": "https://arts.example.com/a.zip"}
# The contract's table (section 4) plus the answers the receiver adds for slow bodies.
RECEIVER_CODES = {"200", "400", "401", "408", "409", "413", "415"}

ClientFactory = Callable[..., Awaitable[TestClient[Any, Any]]]


def load_document() -> dict[str, Any]:
    raw = (
        resources.files("notraining_agent.http")
        .joinpath("openapi.json")
        .read_text(encoding="utf-8")
    )
    document: dict[str, Any] = json.loads(raw)
    return document


class OneJobDesk:
    """A minimal JobDesk: takes the first job, knows it afterwards, refuses others."""

    def __init__(self) -> None:
        self.held: str | None = None

    @property
    def state(self) -> AgentState:
        return AgentState.BUSY if self.held else AgentState.IDLE

    def status(self) -> Mapping[str, object]:
        return {"state": self.state.value, "job": {"ntd_transaction_id": self.held}}

    async def offer(self, spec: JobSpec, *, via: str) -> Offer:
        ntd = spec.ntd_transaction_id
        if self.held is None:
            self.held = ntd
            return Offer("accepted", ntd, job_state=JobState.ACCEPTED)
        if self.held == ntd:
            return Offer("known", ntd, job_state=JobState.RUNNING)
        return Offer("refused", ntd, reason="another job holds this VM", current={"id": ntd})


def make_app() -> web.Application:
    settings = Settings(auth_mode="static", token=Secret(TOKEN), max_body_bytes=LIMIT)
    return build_app(
        desk=OneJobDesk(),
        authenticator=Authenticator(settings),
        settings=settings,
        metadata_hosts=frozenset(),
    )


def validator_for(document: dict[str, Any], schema: dict[str, Any]) -> jsonschema.Validator:
    """A 2020-12 validator for a schema inside the document, its ``$ref``s resolvable."""
    root = {**schema, "components": document["components"]}
    return jsonschema.Draft202012Validator(root)


def response_spec(document: dict[str, Any], path: str, method: str, status: int) -> dict[str, Any]:
    spec: dict[str, Any] = document["paths"][path][method]["responses"][str(status)]
    if "$ref" in spec:
        name = spec["$ref"].rsplit("/", 1)[-1]
        spec = document["components"]["responses"][name]
    return spec


# --- the document itself -----------------------------------------------------------------


def test_document_is_valid_openapi_3_1() -> None:
    """The document passes the OpenAPI 3.1 meta-schema and every schema is valid 2020-12."""
    document = load_document()
    assert document["openapi"].startswith("3.1")
    jsonschema.Draft202012Validator(OPENAPI_31).validate(document)
    for schema in document["components"]["schemas"].values():
        jsonschema.Draft202012Validator.check_schema(schema)


def test_every_reference_resolves() -> None:
    """Each ``$ref`` names a component that exists."""
    document = load_document()
    text = json.dumps(document)
    refs = {part.split('"')[0] for part in text.split('"$ref": "')[1:]}
    assert refs
    for ref in refs:
        node: Any = document
        for key in ref.removeprefix("#/").split("/"):
            node = node[key]
        assert isinstance(node, dict), ref


def test_schemathesis_loads_every_operation() -> None:
    """Schemathesis (used against the live agent) can load each documented operation."""
    schema = schemathesis.openapi.from_dict(load_document())
    operations = set()
    for result in schema.get_all_operations():
        assert isinstance(result, Ok), result
        operations.add((result.ok().method, result.ok().path))
    assert operations == {
        ("post", "/receiver_no_training/"),
        ("post", "/receiver_no_training"),
        ("get", "/healthz"),
        ("get", "/status"),
        ("get", "/openapi.json"),
    }


def test_paths_and_methods_match_the_app_routes() -> None:
    """Every route of the app is documented and every documented operation is routed."""
    routes = {
        (route.resource.canonical, route.method.lower())
        for route in make_app().router.routes()
        if route.resource is not None
    }
    document = load_document()
    documented = {(path, method) for path, item in document["paths"].items() for method in item}
    assert documented == routes


def test_status_codes_match_the_contract_table() -> None:
    """The receiver documents the table's answers; /status also 401; the rest only 200."""
    paths = load_document()["paths"]
    for path in ("/receiver_no_training/", "/receiver_no_training"):
        assert set(paths[path]["post"]["responses"]) == RECEIVER_CODES
    assert set(paths["/status"]["get"]["responses"]) == {"200", "401"}
    assert set(paths["/healthz"]["get"]["responses"]) == {"200"}
    assert set(paths["/openapi.json"]["get"]["responses"]) == {"200"}


def test_both_receiver_paths_are_documented_alike() -> None:
    """With and without the trailing slash, the operation is the same but for its id."""
    paths = load_document()["paths"]
    slashed = dict(paths["/receiver_no_training/"]["post"])
    bare = dict(paths["/receiver_no_training"]["post"])
    assert slashed.pop("operationId") != bare.pop("operationId")
    assert slashed == bare


def test_security_matches_the_code() -> None:
    """The receiver and /status need a token (raw or Bearer); /healthz and the document do not."""
    document = load_document()
    schemes = document["components"]["securitySchemes"]
    assert (schemes["bearerAuth"]["type"], schemes["bearerAuth"]["scheme"]) == ("http", "bearer")
    assert schemes["rawToken"]["in"] == "header"
    assert schemes["rawToken"]["name"] == "Authorization"
    paths = document["paths"]
    for path, method in [(RECEIVER, "post"), ("/receiver_no_training", "post"), ("/status", "get")]:
        assert paths[path][method]["security"] == [{"bearerAuth": []}, {"rawToken": []}]
    assert paths["/healthz"]["get"]["security"] == []
    assert paths["/openapi.json"]["get"]["security"] == []


def test_agent_and_job_states_match_the_code() -> None:
    """The documented state enums are exactly the code's AgentState and JobState."""
    schemas = load_document()["components"]["schemas"]
    assert set(schemas["AgentState"]["enum"]) == {state.value for state in AgentState}
    assert set(schemas["AnswerState"]["enum"]) == {state.value for state in JobState}


def test_job_schema_accepts_the_contract_s_example() -> None:
    """A contract-shaped JSON job validates against the documented request schema."""
    document = load_document()
    schema = document["paths"][RECEIVER]["post"]["requestBody"]["content"]["application/json"]
    job = {
        "ntd_transaction_id": 4711,
        "no_transaction_id": "99",
        "country": "BR",
        "channel": "tv",
        "label": "brand",
        "category": "POP",
        "zip_art": "https://arts.example.com/a.zip",
        "arts_path": ["gs://bucket/a.png"],
    }
    validator_for(document, schema["schema"]).validate(job)
    with pytest.raises(jsonschema.ValidationError):
        validator_for(document, schema["schema"]).validate({"ntd_transaction_id": "x"})


# --- the answers match the document ------------------------------------------------------------


async def test_every_answer_matches_its_documented_schema(aiohttp_client: ClientFactory) -> None:
    """Each answer of the table, produced by the app, validates against the document."""
    document = load_document()
    client = await aiohttp_client(make_app())
    body = json.dumps(JOB).encode()
    cases: list[tuple[str, str, dict[str, Any], int]] = [
        ("post", RECEIVER, {"data": body, "headers": JSON_HEADERS}, 200),
        ("post", RECEIVER, {"data": body, "headers": JSON_HEADERS}, 200),  # known id
        ("post", RECEIVER, {"json": {**JOB, "ntd_transaction_id": "t-2"}, "headers": AUTH}, 409),
        ("post", RECEIVER, {"json": {"country": 1}, "headers": AUTH}, 400),
        ("post", RECEIVER, {"data": b"{", "headers": JSON_HEADERS}, 400),
        ("post", RECEIVER, {"json": JOB}, 401),
        ("post", RECEIVER, {"data": b"x" * (LIMIT + 1), "headers": JSON_HEADERS}, 413),
        ("post", RECEIVER, {"data": body, "headers": {**AUTH, "Content-Type": "text/xml"}}, 415),
        ("get", "/healthz", {}, 200),
        ("get", "/status", {"headers": AUTH}, 200),
        ("get", "/status", {}, 401),
        ("get", "/openapi.json", {}, 200),
    ]
    seen: set[tuple[str, int]] = set()
    for method, path, kwargs, expected in cases:
        response = await client.request(method, path, **kwargs)
        assert response.status == expected, (method, path, await response.text())
        spec = response_spec(document, path, method, response.status)
        [(media_type, media)] = spec["content"].items()
        assert response.content_type == media_type
        validator_for(document, media["schema"]).validate(await response.json())
        for name, header in spec.get("headers", {}).items():
            validator_for(document, header["schema"]).validate(response.headers[name])
        seen.add((path, response.status))
    # 408 needs a stalled body: test_slow_body_answer_matches_the_document.
    assert {str(code) for path, code in seen if path == RECEIVER} == RECEIVER_CODES - {"408"}


async def test_slow_body_answer_matches_the_document(aiohttp_client: ClientFactory) -> None:
    """The 408 the receiver sends for a body that stalls is documented with its schema."""
    document = load_document()
    settings = Settings(auth_mode="static", token=Secret(TOKEN), max_body_bytes=LIMIT)
    app = build_app(
        desk=OneJobDesk(),
        authenticator=Authenticator(settings),
        settings=settings,
        metadata_hosts=frozenset(),
        body_timeout=0.2,
    )
    client = await aiohttp_client(app)

    async def stalls() -> AsyncIterator[bytes]:
        yield b'{"ntd'
        await asyncio.sleep(1)
        yield b'"}'

    response = await client.post(RECEIVER, data=stalls(), headers=JSON_HEADERS)
    assert response.status == 408
    spec = response_spec(document, RECEIVER, "post", 408)
    validator_for(document, spec["content"]["application/json"]["schema"]).validate(
        await response.json()
    )
