"""Auth attacks (issue 3, item 3; contract section 4), each against the REAL agent process.

Two agents serve the module: one in jwt mode with ``jwt_audience`` set, one in static
mode, both with their secret read from Secret Manager as on a VM. Every attack is a
request to ``POST /receiver_no_training/`` and ``GET /status``; each must get 401 with
``WWW-Authenticate: Bearer``, and no presented token may reach the agent's log. A
valid token on the same agent gets 200, so a 401 is never an accident of setup.
The weak-secret rule is proven by starting agents with weak secrets, in both modes.
In-process, Hypothesis shows the only secret-dependent step is ``hmac.compare_digest``.
"""

from __future__ import annotations

import asyncio
import base64
import hmac
import json
import secrets
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import jwt
import pytest
import pytest_asyncio
from cryptography.hazmat.primitives.asymmetric import rsa
from hypothesis import given
from hypothesis import strategies as st
from notraining_agent.config import Secret, Settings
from notraining_agent.http.auth import MAX_TOKEN_BYTES, Authenticator
from notraining_agent.http.weak_secrets import PUBLISHED_SECRETS
from notraining_testkit.emulators.suite import AgentProcess, World, start_world

from tests.security.conftest import INTERNAL_HOST
from tests.security.harness import PROPERTY, Trap, boot_agent, start_trap

ON_AGENTS = pytest.mark.asyncio(loop_scope="module")
"""Tests reading the module's real agents share the module's event loop."""
AUDIENCE = "notraining-agent"
PROJECT = "projects/demo-project/secrets"
RECEIVER = "/receiver_no_training/"
JOB = {"zip_art": "https://arts.example.com/a.zip"}
"""Invalid on purpose (no ntd_transaction_id): a token that wrongly passed gets 400, and
the agent stays free for the other attacks instead of taking a job and ending."""
# jwt.io's sample token, signed with its sample secret "your-256-bit-secret".
JWT_IO_SAMPLE = (
    "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiIxMjM0NTY3ODkwIiwibmFtZSI6IkpvaG4gRG9lIiwiaWF0"
    "IjoxNTE2MjM5MDIyfQ.SflKxwRJSMeKKF2QT4fwpMeJf36POk6yJV_adQssw5c"
)


def _b64(data: dict[str, Any]) -> str:
    return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()


def _claims(**extra: Any) -> dict[str, Any]:
    now = int(time.time())
    return {"sub": "saturno", "iat": now, "exp": now + 300, "aud": AUDIENCE, **extra}


@dataclass
class Agents:
    """The module's two agents, their secrets, the jku trap, and what they logged."""

    world: World
    jwt_url: str
    jwt_agent: AgentProcess
    jwt_secret: str
    static_url: str
    static_agent: AgentProcess
    static_token: str
    keys: Trap

    def signed(self, secret: str | None = None, **claims: Any) -> str:
        """An HS256 JWT with a valid ``aud``, signed with ``secret`` (default: the real one)."""
        return jwt.encode(_claims(**claims), secret or self.jwt_secret, algorithm="HS256")


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def agents(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Agents]:
    """A jwt-mode agent (audience set) and a static-mode agent, both idle and listening."""
    base = tmp_path_factory.mktemp("auth-attacks")
    world = await start_world(attributes={"notraining-self-stop": "none"}, shutdown_grace="0s")
    world.saturno.jwt_secret = None  # both agents' reports are welcome; auth is tested inbound
    static_token = secrets.token_urlsafe(40)
    world.secrets.add_secret(f"{PROJECT}/static-token", static_token)
    keys = await start_trap(INTERNAL_HOST, body=b'{"keys": []}')
    started: list[AgentProcess] = []
    try:
        jwt_agent, jwt_url = await boot_agent(world, base / "jwt", jwt_audience=AUDIENCE)
        started.append(jwt_agent)
        static_agent, static_url = await boot_agent(
            world,
            base / "static",
            auth_mode="static",
            secret_ref=f"{PROJECT}/static-token/versions/1",
        )
        started.append(static_agent)
        yield Agents(
            world,
            jwt_url,
            jwt_agent,
            world.jwt_secret,
            static_url,
            static_agent,
            static_token,
            keys,
        )
    finally:
        await asyncio.gather(*(agent.close() for agent in started))
        await keys.server.close()
        await world.close()


async def _both_endpoints(
    url: str, authorization: str | None, *, query: str = ""
) -> list[tuple[int, str | None]]:
    """(status, WWW-Authenticate) from the receiver and from /status."""
    headers = {} if authorization is None else {"Authorization": authorization}
    answers = []
    async with aiohttp.ClientSession() as session:
        async with session.post(f"{url}{RECEIVER}{query}", json=JOB, headers=headers) as posted:
            answers.append((posted.status, posted.headers.get("WWW-Authenticate")))
        async with session.get(f"{url}/status{query}", headers=headers) as status:
            answers.append((status.status, status.headers.get("WWW-Authenticate")))
    return answers


REFUSED = [(401, "Bearer"), (401, "Bearer")]

# name -> how to build the Authorization header from the module's agents (None: no header).
JWT_ATTACKS: dict[str, Callable[[Agents], str | None]] = {
    "no-header": lambda a: None,
    "empty": lambda a: "",
    "wrong-token": lambda a: "Bearer not-the-token",
    "bearer-extra-spaces": lambda a: "Bearer  " + a.signed(),
    "bearer-tab": lambda a: "Bearer\t" + a.signed(),
    "basic-scheme": lambda a: "Basic " + a.signed(),
    "alg-none": lambda a: f"{_b64({'alg': 'none', 'typ': 'JWT'})}.{_b64(_claims())}.",
    "alg-none-capitalised": lambda a: f"{_b64({'alg': 'None'})}.{_b64(_claims())}.",
    "hs256-other-secret": lambda a: a.signed(secrets.token_urlsafe(40)),
    "hs512-right-secret": lambda a: jwt.encode(_claims(), a.jwt_secret, algorithm="HS512"),
    "rs256": lambda a: jwt.encode(
        _claims(), rsa.generate_private_key(public_exponent=65537, key_size=2048), "RS256"
    ),
    "rs256-header-hmac-signature": lambda a: (
        f"{_b64({'alg': 'RS256', 'typ': 'JWT'})}.{_b64(_claims())}." + a.signed().rsplit(".", 1)[1]
    ),
    "kid-other-key": lambda a: jwt.encode(
        _claims(), "attacker-key-" * 4, "HS256", headers={"kid": "../../../dev/null"}
    ),
    "jku-attacker-keys": lambda a: jwt.encode(
        _claims(), "attacker-key-" * 4, "HS256", headers={"jku": a.keys.url("/jwks.json")}
    ),
    "jwk-embedded": lambda a: jwt.encode(
        _claims(),
        "attacker-key-" * 4,
        "HS256",
        headers={"jwk": {"kty": "oct", "k": base64.urlsafe_b64encode(b"attacker").decode()}},
    ),
    "expired": lambda a: a.signed(exp=int(time.time()) - 120),
    "not-yet-valid": lambda a: a.signed(nbf=int(time.time()) + 120),
    "no-exp": lambda a: jwt.encode(
        {"sub": "saturno", "aud": AUDIENCE}, a.jwt_secret, algorithm="HS256"
    ),
    "wrong-audience": lambda a: a.signed(aud="someone-else"),
    "no-audience": lambda a: jwt.encode(
        {"sub": "saturno", "exp": int(time.time()) + 300}, a.jwt_secret, algorithm="HS256"
    ),
    "over-8-kib": lambda a: a.signed(padding="x" * MAX_TOKEN_BYTES),
    "garbage": lambda a: "eyJ." * 50,
}


@pytest.mark.integration
@ON_AGENTS
async def test_a_valid_token_is_accepted(agents: Agents) -> None:
    """The control: a valid JWT or static token, raw or after Bearer, gets /status 200."""
    async with aiohttp.ClientSession() as session:
        for url, value in (
            (agents.jwt_url, agents.signed()),
            (agents.jwt_url, "Bearer " + agents.signed()),
            (agents.static_url, agents.static_token),
            (agents.static_url, "Bearer " + agents.static_token),
        ):
            async with session.get(f"{url}/status", headers={"Authorization": value}) as answer:
                assert answer.status == 200


@pytest.mark.integration
@ON_AGENTS
@pytest.mark.parametrize("name", list(JWT_ATTACKS))
async def test_jwt_mode_refuses(agents: Agents, name: str) -> None:
    """401 with WWW-Authenticate: Bearer from the receiver and from /status."""
    assert await _both_endpoints(agents.jwt_url, JWT_ATTACKS[name](agents)) == REFUSED


STATIC_ATTACKS: dict[str, Callable[[Agents], str | None]] = {
    "no-header": lambda a: None,
    "empty": lambda a: "",
    "wrong-token": lambda a: secrets.token_urlsafe(40),
    "prefix-of-the-token": lambda a: a.static_token[:-1],
    "token-plus-one-char": lambda a: a.static_token + "x",
    "bearer-extra-spaces": lambda a: "Bearer  " + a.static_token,
    "basic-scheme": lambda a: "Basic " + a.static_token,
    "a-jwt-instead": lambda a: a.signed(),
    "over-8-kib": lambda a: a.static_token + "x" * MAX_TOKEN_BYTES,
}


@pytest.mark.integration
@ON_AGENTS
@pytest.mark.parametrize("name", list(STATIC_ATTACKS))
async def test_static_mode_refuses(agents: Agents, name: str) -> None:
    """401 with WWW-Authenticate: Bearer from the receiver and from /status."""
    assert await _both_endpoints(agents.static_url, STATIC_ATTACKS[name](agents)) == REFUSED


@pytest.mark.integration
@ON_AGENTS
@pytest.mark.parametrize("parameter", ["token", "access_token", "jwt", "authorization"])
async def test_a_token_in_the_query_string_is_ignored(agents: Agents, parameter: str) -> None:
    """A valid token in ``?token=`` (or the like) is not a credential: 401."""
    for url, value in ((agents.jwt_url, agents.signed()), (agents.static_url, agents.static_token)):
        assert await _both_endpoints(url, None, query=f"?{parameter}={value}") == REFUSED


@pytest.mark.integration
@ON_AGENTS
async def test_jku_is_never_fetched(agents: Agents) -> None:
    """The key URL a token names is never fetched: the trap standing for it saw nothing."""
    header = JWT_ATTACKS["jku-attacker-keys"](agents)
    assert await _both_endpoints(agents.jwt_url, header) == REFUSED
    assert agents.keys.hits == []


@pytest.mark.integration
@ON_AGENTS
async def test_refusals_are_logged_without_any_token(agents: Agents) -> None:
    """Each refusal is one line with its reason; no presented token nor secret is logged."""
    presented = {
        agents.jwt_url: [build(agents) or "" for build in JWT_ATTACKS.values()],
        agents.static_url: [build(agents) or "" for build in STATIC_ATTACKS.values()],
    }
    before = len(agents.jwt_agent.lines) + len(agents.static_agent.lines)
    for url, headers in presented.items():
        for header in headers:
            assert await _both_endpoints(url, header or None) == REFUSED
    await asyncio.sleep(0.5)  # the last lines are still in the pipe
    lines = agents.jwt_agent.lines + agents.static_agent.lines
    refusals = [line for line in lines if line.get("auth_refusal")]
    assert len(lines) - before >= 2 * sum(map(len, presented.values()))
    assert {line["severity"] for line in refusals} == {"INFO"}
    text = json.dumps(lines) + agents.jwt_agent.stderr + agents.static_agent.stderr
    secrets_shown = [agents.jwt_secret, agents.static_token]
    for header in [h for hs in presented.values() for h in hs] + secrets_shown:
        for part in header.removeprefix("Bearer ").split("."):
            if len(part) >= 24:  # {"alg":"none"} encodes shorter; signatures and bodies do not
                assert part not in text, f"{part[:12]}... leaked into the log"


# --- the weak-secret rule, on agents that must refuse to start -----------------------------

WEAK = {
    "jwt-published": ("jwt", "your-256-bit-secret", "jwt_secret", "published sample secret"),
    "jwt-published-long": (
        "jwt",
        "a-string-secret-at-least-256-bits-long",
        "jwt_secret",
        "published sample secret",
    ),
    "jwt-short": ("jwt", secrets.token_hex(8), "jwt_secret", "shorter than 32 bytes"),
    "static-published": ("static", "changeme", "token", "published sample secret"),
    "static-jwt-io-sample": ("static", JWT_IO_SAMPLE, "token", "'your-256-bit-secret'"),
    "static-one-character": ("static", "a" * 40, "token", "distinct characters"),
    # A public sample token is as public as key as it is as token (issue 14).
    "jwt-sample-token-as-secret": ("jwt", JWT_IO_SAMPLE, "jwt_secret", "'your-256-bit-secret'"),
    "static-bearer-sample-token": (
        "static",
        f"Bearer {JWT_IO_SAMPLE}",
        "token",
        "'your-256-bit-secret'",
    ),
    "static-bearer-prefix": ("static", f"Bearer {secrets.token_hex(24)}", "token", "'Bearer'"),
}


@pytest.mark.integration
async def test_weak_secrets_stop_the_agent_in_both_modes(world: World, tmp_path: Path) -> None:
    """Each weak secret (from Secret Manager) ends the start with exit 2 and one line naming it."""
    started: dict[str, AgentProcess] = {}
    for name, (mode, secret, _, _) in WEAK.items():
        world.secrets.add_secret(f"{PROJECT}/{name}", secret)
        started[name] = AgentProcess(
            world.agent_env(
                tmp_path / name / "state",
                auth_mode=mode,
                secret_ref=f"{PROJECT}/{name}/versions/1",
            )
        )
    try:
        await asyncio.gather(*(agent.start() for agent in started.values()))
        codes = await asyncio.gather(*(agent.wait(45) for agent in started.values()))
    finally:
        await asyncio.gather(*(agent.close() for agent in started.values()))
    for (name, agent), code in zip(started.items(), codes, strict=True):
        _, secret, key, why = WEAK[name]
        lines = agent.stderr.strip().splitlines()
        assert code == 2, (name, agent.stderr)
        assert len(lines) == 1, lines
        assert key in lines[0] and "Secret Manager" in lines[0] and why in lines[0], lines[0]
        if why != "published sample secret":
            assert secret not in lines[0]
    assert world.saturno.reports_for("register") == []


@pytest.mark.integration
@pytest.mark.parametrize("mode", ["jwt", "static"])
async def test_allow_weak_secret_starts_with_a_warning(
    world: World, tmp_path: Path, mode: str
) -> None:
    """allow_weak_secret: true lets a published secret start, with one warning naming the key."""
    world.secrets.add_secret(f"{PROJECT}/weak-{mode}", "your-256-bit-secret")
    world.saturno.jwt_secret = None
    agent, _ = await boot_agent(
        world,
        tmp_path,
        auth_mode=mode,
        secret_ref=f"{PROJECT}/weak-{mode}/versions/1",
        allow_weak_secret="true",
    )
    try:
        warning = await agent.wait_for_log(
            lambda line: "allow_weak_secret" in str(line.get("message")), timeout=10
        )
    finally:
        await agent.close()
    assert warning["severity"] == "WARNING"
    assert ("jwt_secret" if mode == "jwt" else "token") in warning["message"]


def test_the_rule_covers_every_published_sample() -> None:
    """jwt.io's and the frameworks' samples are on the list the rule reads."""
    assert {"your-256-bit-secret", "a-string-secret-at-least-256-bits-long"} <= PUBLISHED_SECRETS
    assert len(PUBLISHED_SECRETS) >= 50


# --- constant time: the only secret-dependent step is hmac.compare_digest ------------------

STATIC_TOKEN = "Hq3Lx8Vz1Rt6Yw0Pn5Mc2Kb7Jf4Gd9Sa-static-token"
JWT_SECRET = "k7Qy2v9Lr0XwTz4NcM8bHs1JdF6gPa3E-jwt-secret"


class CompareSpy:
    """Counts hmac.compare_digest calls and remembers whether the secret was an operand."""

    def __init__(self, secret: bytes) -> None:
        self.secret = secret
        self.calls = 0
        self.with_secret = 0
        self._real = hmac.compare_digest

    def __call__(self, a: Any, b: Any) -> bool:
        self.calls += 1
        self.with_secret += self.secret in (a, b)
        return self._real(a, b)


_headers = st.one_of(
    st.text(max_size=300),
    st.builds(lambda t: "Bearer " + t, st.text(max_size=300)),
    st.builds(lambda n: STATIC_TOKEN[:n], st.integers(0, len(STATIC_TOKEN))),
    st.builds(lambda t: STATIC_TOKEN + t, st.text(min_size=1, max_size=20)),
)


@PROPERTY
@given(_headers)
def test_static_check_compares_only_with_compare_digest(header: str) -> None:
    """Property: any header up to 8 KiB reaches exactly one compare_digest against the token."""
    spy = CompareSpy(STATIC_TOKEN.encode())
    authenticator = Authenticator(Settings(auth_mode="static", token=Secret(STATIC_TOKEN)))
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(hmac, "compare_digest", spy)
        accepted = authenticator.check(header)
    token = header[7:] if header[:7].lower() == "bearer " else header
    assert accepted == (token == STATIC_TOKEN)
    assert spy.calls == (1 if token else 0) and spy.with_secret == spy.calls


@PROPERTY
@given(st.binary(min_size=32, max_size=32), st.text(max_size=30))
def test_jwt_signature_is_compared_with_compare_digest(signature: bytes, subject: str) -> None:
    """Property: a well-formed HS256 token's signature is checked by one compare_digest only."""
    header = _b64({"alg": "HS256", "typ": "JWT"})
    claims = _b64({"sub": subject, "exp": int(time.time()) + 300})
    forged = f"{header}.{claims}.{base64.urlsafe_b64encode(signature).rstrip(b'=').decode()}"
    spy = CompareSpy(b"")
    authenticator = Authenticator(Settings(auth_mode="jwt", jwt_secret=Secret(JWT_SECRET)))
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(hmac, "compare_digest", spy)
        assert not authenticator.check(forged)
    assert spy.calls == 1
