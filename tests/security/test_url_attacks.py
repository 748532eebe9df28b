"""URL attacks (issue 3, item 5; contract section 5), each against real servers on loopback.

Three layers, each ending with "the server aimed at saw nothing":

- refused when posted (no DNS needed): the REAL agent answers 400 naming ``zip_art``;
- refused while downloading (a name that resolves to loopback, a redirect from the
  allowed art host to the metadata server...): the REAL agent ends the job ``failed``;
- the address actually connected to: in-process, with a scripted DNS answering
  differently on each lookup (rebinding) or with IPv4-mapped IPv6 addresses.

URL templates name ``{internal}`` (a private service on 127.0.0.2), ``{local}`` (one
on 127.0.0.1, reached by the name ``localhost``), ``{metadata}`` (the metadata
emulator, named by GCE_METADATA_HOST) and ``{art}`` (the allowed art server).
"""

from __future__ import annotations

import socket
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

import aiohttp
import pytest
import pytest_asyncio
from aiohttp.abc import AbstractResolver, ResolveResult
from notraining_agent.cli.submit import submit
from notraining_agent.errors import InputRefusedError
from notraining_agent.job import urlguard
from notraining_agent.job.fetch import USER_AGENT, download_all
from notraining_testkit.emulators._server import RunningServer, serve
from notraining_testkit.emulators.artgen import generate_package
from notraining_testkit.emulators.artserver import ArtServer
from notraining_testkit.emulators.suite import World, start_world

from tests.security.conftest import INTERNAL_HOST, METADATA_HOST
from tests.security.harness import Ended, Trap, boot_agent, run_agents, saturno_token, start_trap

ON_AGENTS = pytest.mark.asyncio(loop_scope="module")
"""Tests reading the module's real agents share the module's event loop."""
TOKEN = "/computeMetadata/v1/instance/service-accounts/default/token"

# name -> (zip_art template, what the 400 must say); each is refused without any DNS.
POSTED = {
    "loopback": ("http://{internal}/a.zip", "loopback"),
    "10/8": ("http://10.1.2.3/a.zip", "private"),
    "172.16/12": ("http://172.31.255.254/a.zip", "private"),
    "192.168/16": ("http://192.168.0.1/a.zip", "private"),
    "unspecified": ("http://0.0.0.0:{internal_port}/a.zip", "unspecified"),
    "metadata-ip": ("http://169.254.169.254" + TOKEN, "GCE metadata server"),
    "metadata-name": ("http://metadata.google.internal" + TOKEN, "metadata server"),
    "metadata-name-spelled": ("http://METADATA.Google.Internal./x", "metadata server"),
    "metadata-short-name": ("http://metadata/computeMetadata/v1/", "metadata server"),
    "gce-metadata-host": ("http://{metadata}" + TOKEN, "GCE_METADATA_HOST"),
    "ipv6-loopback": ("http://[::1]:{internal_port}/a.zip", "loopback"),
    "ipv4-mapped-ipv6": ("http://[::ffff:127.0.0.2]:{internal_port}/a.zip", "loopback"),
    "ipv4-mapped-metadata": ("http://[::ffff:169.254.169.254]/x", "GCE metadata server"),
    "nat64-metadata": ("http://[64:ff9b::a9fe:a9fe]/x", "GCE metadata server"),
    "decimal-ip": ("http://2130706434:{internal_port}/a.zip", "legacy numeric form"),
    "octal-ip": ("http://0177.0.0.2:{internal_port}/a.zip", "legacy numeric form"),
    "hex-ip": ("http://0x7f000002:{internal_port}/a.zip", "legacy numeric form"),
    "short-ip": ("http://127.2:{internal_port}/a.zip", "legacy numeric form"),
    "mixed-ip": ("http://0x7f.0.0.2:{internal_port}/a.zip", "legacy numeric form"),
    "decimal-metadata": ("http://2852039166/x", "legacy numeric form"),
    "file-scheme": ("file:///etc/passwd", "scheme 'file'"),
    "ftp-scheme": ("ftp://arts.example.com/a.zip", "scheme 'ftp'"),
    "gopher-scheme": ("gopher://{internal}/_x", "scheme 'gopher'"),
    "credentials": ("http://user:hunter2@arts.example.com/a.zip", "credentials"),
    "credentials-trick": ("http://arts.example.com@169.254.169.254/x", "credentials"),
}


def _redirect(target: str) -> str:
    return "http://{art}/redirect?to=" + quote(target, safe="{}")


# name -> (zip_art template, what the failed job's error must say); each passes the POST.
DOWNLOADED = {
    "dns-name-to-loopback": ("http://localhost:{local_port}/attack/a.zip", "loopback"),
    "redirect-to-metadata-ip": (_redirect("http://169.254.169.254" + TOKEN), "GCE metadata"),
    "redirect-to-metadata-name": (_redirect("http://metadata.google.internal" + TOKEN), "metadata"),
    "redirect-to-gce-metadata-host": (
        _redirect("http://{metadata}" + TOKEN + "?attack=1"),
        "GCE_METADATA_HOST",
    ),
    "redirect-to-mapped-metadata": (
        _redirect("http://[::ffff:127.0.0.1]:{metadata_port}" + TOKEN + "?attack=2"),
        "GCE_METADATA_HOST",
    ),
    "redirect-to-internal": (_redirect("http://{internal}/attack/r.zip"), "loopback"),
    "redirect-to-dns-loopback": (
        _redirect("http://localhost:{local_port}/attack/r.zip"),
        "loopback",
    ),
    "redirect-to-file": (_redirect("file:///etc/passwd"), "scheme 'file'"),
    "redirect-to-gs": (_redirect("gs://bucket/object.zip"), "only to http or https"),
}
ALLOWED = "allowed-host"
ART_ZIP = "http://{art}/package.zip"


@dataclass
class Setting:
    """The module's world, its traps, and what the real agents answered."""

    world: World
    internal: Trap
    local: Trap
    posted: dict[str, tuple[int, object]]
    ended: dict[str, Ended]
    healthz_after: object

    def fill(self, template: str) -> str:
        """A URL template with this setting's addresses."""
        metadata = self.world.servers["metadata"]
        return template.format(
            internal=self.internal.netloc,
            internal_port=self.internal.port,
            local_port=self.local.port,
            metadata=metadata.netloc,
            metadata_port=metadata.port,
            art=self.world.servers["art"].netloc,
        )


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def setting(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Setting]:
    """One real agent answers every POST-time attack; one more runs each download attack."""
    base = tmp_path_factory.mktemp("url-attacks")
    world = await start_world(attributes={"notraining-self-stop": "none"}, shutdown_grace="0s")
    internal = await start_trap(INTERNAL_HOST)
    local = await start_trap("127.0.0.1")
    here = Setting(world, internal, local, {}, {}, None)
    try:
        agent, url = await boot_agent(world, base / "static")
        try:
            for name, (template, _) in POSTED.items():
                job = {"ntd_transaction_id": f"url-{name}", "zip_art": here.fill(template)}
                answer = await submit(url, job, authorization=saturno_token(world), as_json=True)
                here.posted[name] = (answer.status, answer.body)
            async with aiohttp.ClientSession() as session, session.get(f"{url}/healthz") as got:
                here.healthz_after = await got.json()
        finally:
            await agent.close()
        jobs = [
            {"ntd_transaction_id": f"url-{name}", "zip_art": here.fill(template)}
            for name, (template, _) in DOWNLOADED.items()
        ]
        jobs.append({"ntd_transaction_id": f"url-{ALLOWED}", "zip_art": here.fill(ART_ZIP)})
        here.ended = await run_agents(world, base / "agents", jobs)
        yield here
    finally:
        await internal.server.close()
        await local.server.close()
        await world.close()


@pytest.mark.integration
@ON_AGENTS
@pytest.mark.parametrize("name", list(POSTED))
async def test_refused_when_posted(setting: Setting, name: str) -> None:
    """400 naming zip_art with the reason; no job taken, nothing reached the target."""
    status, body = setting.posted[name]
    assert status == 400, body
    assert isinstance(body, dict)
    message = body["errors"]["zip_art"]
    assert POSTED[name][1] in message, message
    assert "hunter2" not in str(body)  # credentials are refused, never echoed


@pytest.mark.integration
@ON_AGENTS
async def test_posted_attacks_left_the_agent_idle_and_the_targets_untouched(
    setting: Setting,
) -> None:
    """After every POST-time attack the agent is still idle and no trap saw a request."""
    assert setting.healthz_after == {"status": "ok", "state": "idle"}
    assert setting.internal.hits == []
    assert setting.local.hits == []


@pytest.mark.integration
@ON_AGENTS
@pytest.mark.parametrize("name", list(DOWNLOADED))
async def test_refused_while_downloading(setting: Setting, name: str) -> None:
    """Accepted (no DNS at POST), then the job ends failed naming the URL and the reason."""
    outcome = setting.ended[f"url-{name}"]
    assert outcome.answer.status == 200
    assert outcome.report["status"] == "failed", outcome.report
    error = outcome.report["error"]
    assert error.startswith("download of http://"), error
    assert "refused" in error and DOWNLOADED[name][1] in error, error
    if name.startswith("redirect"):
        assert "redirected to" in error or "resolves to" in error, error


@pytest.mark.integration
@ON_AGENTS
async def test_download_attacks_never_reached_their_targets(setting: Setting) -> None:
    """No trap and no metadata path got a request from the agents' download sessions."""
    assert setting.internal.hits == []
    assert setting.local.hits == []
    downloads = [
        r for r in setting.world.metadata.requests if r.headers.get("User-Agent") == USER_AGENT
    ]
    assert downloads == []
    assert not any("attack" in r.query for r in setting.world.metadata.requests)


@pytest.mark.integration
@ON_AGENTS
async def test_a_host_in_allowed_url_hosts_is_allowed(setting: Setting) -> None:
    """The art server, listed in allowed_url_hosts, is on loopback and still serves the job."""
    outcome = setting.ended[f"url-{ALLOWED}"]
    assert outcome.report["status"] == "done", outcome.report
    assert outcome.report["arts"] == len(setting.world.art.package.names)


# --- the attacks are real: without the guard, the spellings do reach the service ------------


@pytest.mark.parametrize("spelling", ["2130706434", "0177.0.0.2", "0x7f000002", "127.2", "0x7f.2"])
async def test_odd_ipv4_spellings_reach_loopback_through_libc(
    internal: Trap, spelling: str
) -> None:
    """libc reads each spelling as 127.0.0.2 and connects: refusing them statically matters."""
    with socket.create_connection((spelling, internal.port), timeout=5) as connected:
        assert connected.getpeername()[0] == INTERNAL_HOST
    refused = urlguard.static_refusal(
        f"http://{spelling}:{internal.port}/a.zip",
        allowed_hosts=frozenset(),
        metadata_hosts=frozenset(),
    )
    assert refused is not None and "legacy numeric form" in refused


async def test_localhost_resolves_to_a_live_loopback_service(tmp_path: Path) -> None:
    """Without the guard, http://localhost:<port>/ reaches a service on 127.0.0.1."""
    local = await start_trap("127.0.0.1")
    try:
        async with (
            aiohttp.ClientSession() as session,
            session.get(f"http://localhost:{local.port}/x") as response,
        ):
            assert response.status == 200
        assert local.hits == ["/x"]
    finally:
        await local.server.close()


# --- the address actually connected to (in-process, scripted DNS) --------------------------


class ScriptedDNS(AbstractResolver):
    """Answers lookup n with ``answers[min(n, last)]``: what a rebinding DNS server does."""

    def __init__(self, *answers: str) -> None:
        self.answers = answers
        self.lookups: list[str] = []

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        address = self.answers[min(len(self.lookups), len(self.answers) - 1)]
        self.lookups.append(host)
        kind = socket.AF_INET6 if ":" in address else socket.AF_INET
        return [
            ResolveResult(hostname=host, host=address, port=port, family=kind, proto=0, flags=0)
        ]

    async def close(self) -> None:
        return None


@contextmanager
def scripted(monkeypatch: pytest.MonkeyPatch, dns: ScriptedDNS) -> Iterator[None]:
    """Make the download guard's own lookups go to ``dns`` (it wraps aiohttp's default)."""
    monkeypatch.setattr(urlguard, "DefaultResolver", lambda: dns)
    yield


@dataclass
class Twins:
    """The art server on 127.0.0.1:P and a metadata stand-in on 127.0.0.3:P, same port."""

    art: ArtServer
    art_server: RunningServer
    metadata: Trap

    @property
    def port(self) -> int:
        """The port both listen on."""
        return self.art_server.port


@pytest.fixture
async def twins() -> AsyncIterator[Twins]:
    """Two servers on one port number: only the address DNS gives decides which is reached."""
    art = ArtServer(generate_package(2, seed=5))
    art_server = await serve(art.app())
    metadata = await start_trap(METADATA_HOST, art_server.port)
    try:
        yield Twins(art, art_server, metadata)
    finally:
        await metadata.server.close()
        await art_server.close()


async def _download(twins: Twins, tmp_path: Path, host: str) -> bytes:
    got = await download_all(
        [f"http://{host}:{twins.port}/package.zip"],
        tmp_path / "in",
        allowed_hosts=frozenset({f"arts.test:{twins.port}"}),
        metadata_hosts=frozenset({twins.metadata.netloc, "169.254.169.254"}),
        max_total_bytes=10**8,
    )
    return got[0].path.read_bytes()


async def test_rebinding_dns_gets_one_lookup_and_the_checked_address_is_used(
    twins: Twins, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """DNS says art first, metadata after: one lookup, the art server's bytes, no metadata hit."""
    dns = ScriptedDNS("127.0.0.1", METADATA_HOST)
    with scripted(monkeypatch, dns):
        data = await _download(twins, tmp_path, "arts.test")
    assert data == twins.art.package.zip_bytes
    assert dns.lookups == ["arts.test"]
    assert twins.metadata.hits == []


async def test_rebinding_dns_answering_metadata_first_is_refused(
    twins: Twins, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """DNS says metadata first (art after): refused at connect, even for a listed name."""
    dns = ScriptedDNS(METADATA_HOST, "127.0.0.1")
    with scripted(monkeypatch, dns), pytest.raises(InputRefusedError, match="metadata server"):
        await _download(twins, tmp_path, "arts.test")
    assert twins.metadata.hits == []
    assert twins.art.requests == []


async def test_ipv4_mapped_answer_for_an_allowed_name_cannot_reach_metadata(
    twins: Twins, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """::ffff:127.0.0.3 for a listed name is the metadata server over a dual-stack socket."""
    unguarded = ScriptedDNS(f"::ffff:{METADATA_HOST}")
    connector = aiohttp.TCPConnector(resolver=unguarded, use_dns_cache=False)
    async with (
        aiohttp.ClientSession(connector=connector) as session,
        session.get(f"http://arts.test:{twins.port}/control") as response,
    ):
        assert response.status == 200  # the control: this answer does reach 127.0.0.3
    assert twins.metadata.hits == ["/control"]

    with (
        scripted(monkeypatch, ScriptedDNS(f"::ffff:{METADATA_HOST}")),
        pytest.raises(InputRefusedError, match="metadata server"),
    ):
        await _download(twins, tmp_path, "arts.test")
    assert twins.metadata.hits == ["/control"]


async def test_unlisted_name_resolving_to_loopback_is_refused_before_connecting(
    twins: Twins, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A name outside allowed_url_hosts that resolves to loopback never gets a request."""
    with (
        scripted(monkeypatch, ScriptedDNS("127.0.0.1")),
        pytest.raises(InputRefusedError, match="loopback"),
    ):
        await _download(twins, tmp_path, "evil.test")
    assert twins.art.requests == []
