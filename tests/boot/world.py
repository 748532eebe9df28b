"""The emulated GCE world of one boot, as the guest sees it at 169.254.169.254.

Every emulator of the test kit and the release file server run on host loopback; the
guest reaches each through one guestfwd (guest port -> host port), and nothing else.
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from notraining_testkit.emulators._server import RunningServer, serve
from notraining_testkit.emulators.artgen import generate_package
from notraining_testkit.emulators.artserver import ArtServer
from notraining_testkit.emulators.compute import ComputeEmulator
from notraining_testkit.emulators.metadata import DEFAULT_ACCESS_TOKEN, MetadataEmulator
from notraining_testkit.emulators.saturno import SaturnoEmulator
from notraining_testkit.emulators.secretmanager import SecretManagerEmulator

from tests.boot.guest import ART_IP, SERVICE_IP
from tests.boot.release import FileServer, Release

# The guest's view: one port per service on the metadata address.
GUEST_PORTS = {
    "metadata": 80,
    "saturno": 8001,
    "compute": 8002,
    "secrets": 8003,
    "art": 8004,
    "files": 8443,
}
PROJECT, ZONE, INSTANCE = "demo-project", "us-east1-b", "notraining-vm-1"


def guest_url(service: str) -> str:
    """Base URL of a service as the guest reaches it."""
    scheme = "https" if service == "files" else "http"
    return f"{scheme}://{guest_ip(service)}:{GUEST_PORTS[service]}"


def guest_ip(service: str) -> str:
    """The address a service has in the guest's network."""
    return ART_IP if service == "art" else SERVICE_IP


@dataclass
class BootWorld:
    """Emulators + file server on loopback; ``close()`` stops them all."""

    metadata: MetadataEmulator
    saturno: SaturnoEmulator
    compute: ComputeEmulator
    secrets: SecretManagerEmulator
    art: ArtServer
    files: FileServer
    jwt_secret: str
    servers: dict[str, RunningServer] = field(default_factory=dict)
    stop_calls: list[float] = field(default_factory=list)

    def host_ports(self) -> dict[tuple[str, int], int]:
        """(guest IP, guest port) -> host port, the guestfwd table."""
        return {
            (guest_ip(name), GUEST_PORTS[name]): server.port
            for name, server in self.servers.items()
        }

    def token(self) -> str:
        """A JWT as Saturno sends it, signed with the secret the agent reads from Secret Manager."""
        import jwt  # noqa: PLC0415 - only the HTTP scenarios need it

        now = int(time.time())
        return jwt.encode(
            {"sub": "saturno", "iat": now, "exp": now + 600}, self.jwt_secret, algorithm="HS256"
        )

    def configure(
        self, outputs: Mapping[str, Any], user_data: str, extra: Mapping[str, str]
    ) -> None:
        """Serve Terraform's attributes and user-data, and the secret its secret_ref names."""
        for key, value in outputs["metadata"].items():
            self.metadata.set_instance_attribute(key, value)
        # Google API endpoints are not module inputs: the emulators stand in for them.
        self.metadata.set_instance_attribute("notraining-compute-endpoint", guest_url("compute"))
        self.metadata.set_instance_attribute(
            "notraining-secretmanager-endpoint", guest_url("secrets")
        )
        for key, value in extra.items():
            self.metadata.set_instance_attribute(key, value)
        self.metadata.set_instance_attribute("user-data", user_data)  # with the test's probes
        self.secrets.add_secret(outputs["secret_ref"], self.jwt_secret)

    async def close(self) -> None:
        """Stop every server."""
        for server in reversed(list(self.servers.values())):
            with contextlib.suppress(Exception):
                await server.close()


async def start_boot_world(release: Release, tls: Any, art_count: int = 4) -> BootWorld:
    """Serve the emulators and the release; the Compute emulator's stop calls are recorded."""
    jwt_secret = secrets.token_urlsafe(48)
    world = BootWorld(
        metadata=MetadataEmulator(project_id=PROJECT, zone=ZONE, name=INSTANCE),
        saturno=SaturnoEmulator(jwt_secret=jwt_secret),
        compute=ComputeEmulator(expected_token=DEFAULT_ACCESS_TOKEN),
        secrets=SecretManagerEmulator(expected_token=DEFAULT_ACCESS_TOKEN),
        art=ArtServer(generate_package(art_count, seed=11)),
        files=FileServer(release),
        jwt_secret=jwt_secret,
    )
    world.compute.add_instance(PROJECT, ZONE, INSTANCE)
    try:
        for name, app in (
            ("metadata", world.metadata.app()),
            ("saturno", world.saturno.app()),
            ("compute", world.compute.app()),
            ("secrets", world.secrets.app()),
            ("art", world.art.app()),
        ):
            world.servers[name] = await serve(app)
        runner_server = await _serve_tls(world.files, tls)
        world.servers["files"] = runner_server
    except BaseException:
        await world.close()
        raise
    world.saturno.base_url = guest_url("saturno")
    return world


async def _serve_tls(files: FileServer, tls: Any) -> RunningServer:
    from aiohttp import web  # noqa: PLC0415

    runner = web.AppRunner(files.app(), handle_signals=False, access_log=None, shutdown_timeout=1.0)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0, ssl_context=tls)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    return RunningServer(runner=runner, host="127.0.0.1", port=int(port))


async def wait_until(predicate: Any, timeout: float, what: str) -> None:
    """Poll ``predicate`` (cheap, in-process) every 0.2 s until true; fail after ``timeout``."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")
        await asyncio.sleep(0.2)


__all__ = ["BootWorld", "Path", "guest_url", "start_boot_world", "wait_until"]
