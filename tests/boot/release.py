"""What the recipe downloads, and the HTTPS server it downloads it from.

Stand-in until ``make dist`` exists: the agent's wheel and every dependency, built with
pip for the guest's Python, served as a PEP 503 simple index next to the wheel. The
recipe sees an https:// wheel URL, its sha256 and an https:// index, exactly the module
inputs a private index deployment uses. The server's certificate is signed by the test
CA the guest image trusts; nothing in the recipe is loosened for the test.
"""

from __future__ import annotations

import hashlib
import html
import re
import ssl
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path

from aiohttp import web

from tests.boot.cache import REPO, cache_root, inputs_digest

_Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

# Guest Python per suite: pip fetches wheels for it (no compiler in the guest).
GUEST_PYTHON = {"bookworm": "3.11", "trixie": "3.13"}


@dataclass(frozen=True)
class Release:
    """A folder of wheels: the agent's and its dependencies'."""

    folder: Path
    agent_wheel: Path

    @property
    def sha256(self) -> str:
        """The agent wheel's sha256, as Terraform's agent_wheel_sha256 takes it."""
        return hashlib.sha256(self.agent_wheel.read_bytes()).hexdigest()


def build_release(suite: str) -> Release:
    """The agent's wheel and its dependencies for the suite's Python, cached by inputs."""
    sources = [REPO / "pyproject.toml", *sorted((REPO / "agent").rglob("*.py"))]
    digest = inputs_digest(sources, extra=suite)
    folder = cache_root() / f"release-{suite}-{digest}"
    wheels = sorted(folder.glob("notraining_agent-*.whl"))
    if wheels and (folder / ".complete").exists():
        return Release(folder, wheels[0])
    folder.mkdir(parents=True, exist_ok=True)
    pip = [sys.executable, "-m", "pip", "--disable-pip-version-check", "-q"]
    subprocess.run(
        [*pip, "wheel", "--no-deps", "-w", str(folder), str(REPO)], check=True, timeout=600
    )
    wheel = sorted(folder.glob("notraining_agent-*.whl"))[0]
    subprocess.run(
        [
            *pip,
            "download",
            "--only-binary=:all:",
            "--python-version",
            GUEST_PYTHON[suite],
            "--platform",
            "manylinux_2_28_x86_64",
            "--platform",
            "manylinux2014_x86_64",
            "--platform",
            "manylinux_2_17_x86_64",
            "--implementation",
            "cp",
            "-d",
            str(folder),
            str(wheel),
        ],
        check=True,
        timeout=900,
    )
    (folder / ".complete").write_text("")
    return Release(folder, wheel)


def _normalise(name: str) -> str:
    """PEP 503 normalised project name."""
    return re.sub(r"[-_.]+", "-", name).lower()


def _project(filename: str) -> str:
    """Normalised project name of a wheel file (its name ends at the first dash)."""
    return _normalise(filename.split("-", 1)[0])


@dataclass
class FileServer:
    """The release over HTTPS: /dist/<wheel> and a /simple/ index; records each request."""

    release: Release
    requests: list[tuple[float, str]] = field(default_factory=list)

    def app(self) -> web.Application:
        """The aiohttp app."""
        app = web.Application(middlewares=[self._record])
        app.router.add_get("/simple/", self._root)
        app.router.add_get("/simple/{project}/", self._project)
        app.router.add_get("/dist/{name}", self._file)
        return app

    @web.middleware
    async def _record(self, request: web.Request, handler: _Handler) -> web.StreamResponse:
        self.requests.append((time.time(), request.path))
        return await handler(request)

    def _wheels(self) -> list[Path]:
        return sorted(p for p in self.release.folder.iterdir() if p.suffix == ".whl")

    async def _root(self, _request: web.Request) -> web.Response:
        names = sorted({_project(p.name) for p in self._wheels()})
        links = "".join(f'<a href="{n}/">{n}</a>\n' for n in names)
        return web.Response(text=f"<html><body>\n{links}</body></html>", content_type="text/html")

    async def _project(self, request: web.Request) -> web.Response:
        wanted = _normalise(request.match_info["project"])
        files = [p for p in self._wheels() if _project(p.name) == wanted]
        if not files:
            raise web.HTTPNotFound()
        links = "".join(
            f'<a href="/dist/{html.escape(p.name)}#sha256='
            f'{hashlib.sha256(p.read_bytes()).hexdigest()}">{html.escape(p.name)}</a>\n'
            for p in files
        )
        return web.Response(text=f"<html><body>\n{links}</body></html>", content_type="text/html")

    async def _file(self, request: web.Request) -> web.FileResponse:
        path = self.release.folder / request.match_info["name"]
        if "/" in request.match_info["name"] or not path.is_file():
            raise web.HTTPNotFound()
        return web.FileResponse(path)


def server_tls(ca_pem: Path, ca_key: Path, workdir: Path, ip: str) -> ssl.SSLContext:
    """A server context whose certificate, for ``ip``, the test CA signs."""
    key, csr, crt, ext = (workdir / n for n in ("srv.key", "srv.csr", "srv.pem", "srv.ext"))
    ext.write_text(f"subjectAltName=IP:{ip}\nextendedKeyUsage=serverAuth\n")
    openssl = ["openssl"]
    subprocess.run(
        [
            *openssl,
            "req",
            "-new",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-subj",
            f"/CN={ip}",
            "-keyout",
            str(key),
            "-out",
            str(csr),
        ],
        check=True,
        capture_output=True,
        timeout=60,
    )
    subprocess.run(
        [
            *openssl,
            "x509",
            "-req",
            "-in",
            str(csr),
            "-CA",
            str(ca_pem),
            "-CAkey",
            str(ca_key),
            "-CAcreateserial",
            "-days",
            "2",
            "-out",
            str(crt),
            "-extfile",
            str(ext),
        ],
        check=True,
        capture_output=True,
        timeout=60,
    )
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(crt, key)
    return context
