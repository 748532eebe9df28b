"""What the recipe downloads, and the HTTPS server it downloads it from.

The release is the project's own: ``tools/dist.py`` (what ``make dist`` runs) builds the
agent's wheel and the wheelhouse archive, for the guest's Python only to keep it small.
The recipe sees an https:// wheelhouse URL and its sha256, exactly the module inputs a
deployment uses, and installs offline with the uv inside the archive: no apt, no index.
The server's certificate is signed by the test CA the guest image trusts; nothing in the
recipe is loosened for the test.
"""

from __future__ import annotations

import hashlib
import ssl
import subprocess
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path

from aiohttp import web

from tests.boot.cache import REPO, cache_root, inputs_digest

_Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

# Guest Python per suite: the wheelhouse carries wheels for it only (no compiler in the guest).
GUEST_PYTHON = {"bookworm": "3.11", "trixie": "3.13"}


@dataclass(frozen=True)
class Release:
    """The folder ``tools/dist.py`` wrote: the agent's wheel, the wheelhouse, SHA256SUMS."""

    folder: Path
    wheelhouse: Path

    @property
    def sha256(self) -> str:
        """The wheelhouse's sha256, as Terraform's agent_wheelhouse_sha256 takes it."""
        return hashlib.sha256(self.wheelhouse.read_bytes()).hexdigest()


def build_release(suite: str) -> Release:
    """The release for the suite's Python, built by the project's tool, cached by inputs."""
    sources = [
        REPO / "pyproject.toml",
        REPO / "uv.lock",
        REPO / "tools" / "dist.py",
        REPO / "tools" / "lockfiles.py",
        *sorted((REPO / "agent").rglob("*.py")),
    ]
    digest = inputs_digest(sources, extra=suite)
    folder = cache_root() / f"release-{suite}-{digest}"
    found = sorted(folder.glob("notraining_agent-*-wheelhouse.tar"))
    if found and (folder / ".complete").exists():
        return Release(folder, found[0])
    folder.mkdir(parents=True, exist_ok=True)
    venv = REPO / ".venv" / "bin"
    subprocess.run(
        [
            str(venv / "python"),
            str(REPO / "tools" / "dist.py"),
            "--uv",
            str(venv / "uv"),
            "--out",
            str(folder),
            "--pythons",
            GUEST_PYTHON[suite],
        ],
        check=True,
        timeout=1200,
    )
    tar = sorted(folder.glob("notraining_agent-*-wheelhouse.tar"))[0]
    (folder / ".complete").write_text("")
    return Release(folder, tar)


@dataclass
class FileServer:
    """The release over HTTPS at /dist/<name>; records each request."""

    release: Release
    requests: list[tuple[float, str]] = field(default_factory=list)

    def app(self) -> web.Application:
        """The aiohttp app."""
        app = web.Application(middlewares=[self._record])
        app.router.add_get("/dist/{name}", self._file)
        return app

    @web.middleware
    async def _record(self, request: web.Request, handler: _Handler) -> web.StreamResponse:
        self.requests.append((time.time(), request.path))
        return await handler(request)

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
