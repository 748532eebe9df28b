"""Secret Manager's ``versions:access`` method on loopback, answering like the real v1 REST API.

Only what the agent calls: ``GET /v1/projects/{p}/secrets/{s}/versions/{v}:access``
with a bearer token. Errors use Google's JSON error shape (``{"error": {"code",
"message", "status"}}``) so clients see what they would see in production.
"""

from __future__ import annotations

import base64
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass

import google_crc32c
from aiohttp import web

from notraining_testkit.emulators.metadata import DEFAULT_ACCESS_TOKEN

_ACCESS = re.compile(r"^/v1/projects/([^/]+)/secrets/([^/]+)/versions/([^/:]+):access$")


@dataclass(frozen=True)
class RecordedCall:
    """One request as the emulator saw it (the Authorization header included, for assertions)."""

    method: str
    path: str
    headers: Mapping[str, str]
    status: int


class SecretManagerEmulator:
    """Secrets of one project; add them with :meth:`add_secret`, serve :meth:`app`."""

    def __init__(
        self,
        *,
        project_id: str = "demo-project",
        numeric_project_id: int = 123456789012,
        expected_token: str = DEFAULT_ACCESS_TOKEN,
    ) -> None:
        self.project_id = project_id
        self.numeric_project_id = numeric_project_id
        self.expected_token = expected_token
        self.calls: list[RecordedCall] = []
        self.corrupt_checksums = False
        self._versions: dict[str, list[bytes]] = {}
        self._denied: set[str] = set()
        self._failures: list[int] = []

    def add_secret(self, name: str, value: str | bytes) -> int:
        """Add the next version of a secret (created if new); return its version number.

        ``name`` is the secret ID, ``projects/P/secrets/S`` or a whole version ref
        (whose version part is ignored: versions are numbered in the order added).
        """
        data = value.encode() if isinstance(value, str) else value
        secret = self._secret_id(name)
        self._versions.setdefault(secret, []).append(data)
        return len(self._versions[secret])

    def deny(self, name: str) -> None:
        """Make reads of secret ``name`` answer 403, as when the account lacks the role."""
        self._denied.add(self._secret_id(name))

    def _secret_id(self, name: str) -> str:
        parts = name.split("/")
        if len(parts) == 1:
            return name
        if len(parts) in (4, 6) and parts[0] == "projects" and parts[2] == "secrets":
            if parts[1] not in (self.project_id, str(self.numeric_project_id)):
                raise ValueError(f"this emulator serves project {self.project_id}, not {parts[1]}")
            return parts[3]
        raise ValueError(f"not a secret name: {name!r}")

    def fail_next(self, count: int, status: int = 503) -> None:
        """Answer the next ``count`` requests with ``status`` (retry tests)."""
        self._failures.extend([status] * count)

    def app(self) -> web.Application:
        """The aiohttp application; serve it with ``notraining_testkit.emulators._server.serve``."""
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self._handle)
        return app

    async def _handle(self, request: web.Request) -> web.Response:
        response = self._answer(request)
        self.calls.append(
            RecordedCall(request.method, request.path, request.headers.copy(), response.status)
        )
        return response

    def _answer(self, request: web.Request) -> web.Response:
        match = _ACCESS.match(request.path)
        refusal = self._refusal(request, match)
        if refusal is not None or match is None:
            return refusal or _error(404, "Not found.")
        project, secret, version = match.groups()
        versions = self._versions.get(secret, [])
        number = len(versions) if version == "latest" else int(version) if version.isdigit() else 0
        if not 1 <= number <= len(versions):
            name = f"projects/{project}/secrets/{secret}/versions/{version}"
            return _error(404, f"Secret Version [{name}] not found.")
        data = versions[number - 1]
        checksum = google_crc32c.value(data) ^ (1 if self.corrupt_checksums else 0)
        body = {
            # The real API names the project by number in the answer, whatever the request said.
            "name": f"projects/{self.numeric_project_id}/secrets/{secret}/versions/{number}",
            "payload": {"data": base64.b64encode(data).decode(), "dataCrc32c": str(checksum)},
        }
        return web.json_response(body)

    def _refusal(self, request: web.Request, match: re.Match[str] | None) -> web.Response | None:
        """The error the real API would answer before reading the payload, if any."""
        if self._failures:
            return _error(self._failures.pop(0), "Injected failure.")
        if request.method != "GET" or match is None:
            return _error(404, f"Method not found: {request.method} {request.path}.")
        if request.headers.get("Authorization") != f"Bearer {self.expected_token}":
            return _error(401, "Request had invalid authentication credentials.")
        project, secret, _ = match.groups()
        name = f"projects/{project}/secrets/{secret}"
        if project not in (self.project_id, str(self.numeric_project_id)):
            return _error(404, f"Secret [{name}] not found or has no versions.")
        if secret in self._denied:
            message = f"Permission 'secretmanager.versions.access' denied for resource '{name}'."
            return _error(403, message)
        return None


_STATUS = {
    400: "INVALID_ARGUMENT",
    401: "UNAUTHENTICATED",
    403: "PERMISSION_DENIED",
    404: "NOT_FOUND",
    429: "RESOURCE_EXHAUSTED",
    500: "INTERNAL",
    503: "UNAVAILABLE",
}


def _error(code: int, message: str) -> web.Response:
    body = {"error": {"code": code, "message": message, "status": _STATUS.get(code, "UNKNOWN")}}
    return web.Response(status=code, text=json.dumps(body), content_type="application/json")
