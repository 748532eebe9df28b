"""The settings' shape: every key, its type and its default, and the secret wrapper."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

DEFAULT_CONFIG_PATH = Path("/etc/notraining-agent/config.yaml")
METADATA_PREFIX = "notraining-"
ENV_PREFIX = "NOTRAINING_"
JOB_ATTRIBUTE = "notraining-job"  # a job, not a setting (contract section 6)
DEFAULT_LISTEN_HOST = "0.0.0.0"
DEFAULT_PROCESSOR = "manifest"

AuthMode = Literal["jwt", "static"]
SelfStop = Literal["stop", "delete", "poweroff", "none"]


class Secret:
    """A string that never shows itself in ``repr``, logs or ``check-config``."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def reveal(self) -> str:
        """The secret itself; call it only where the value is used."""
        return self._value

    def __repr__(self) -> str:
        return "Secret('***')"

    __str__ = __repr__

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and other._value == self._value

    def __hash__(self) -> int:
        return hash(self._value)


@dataclass(frozen=True)
class Settings:
    """The agent's effective configuration; built only by :func:`resolve`."""

    register_url: str | None = None
    done_url: str | None = None
    listen_host: str = DEFAULT_LISTEN_HOST
    port: int = 80
    auth_mode: AuthMode = "jwt"
    jwt_secret: Secret | None = None
    jwt_require_exp: bool = True
    jwt_audience: str | None = None
    token: Secret | None = None
    allow_weak_secret: bool = False
    secret_ref: str | None = None
    secretmanager_endpoint: str = "https://secretmanager.googleapis.com"
    saturno_token: Secret | None = None
    idle_timeout: float = 30 * 60.0
    job_timeout: float = 2 * 3600.0
    shutdown_grace: float = 2 * 60.0
    notify_deadline: float = 15 * 60.0
    self_stop: SelfStop = "stop"
    compute_endpoint: str = "https://compute.googleapis.com"
    state_dir: Path = Path("/var/lib/notraining-agent")
    output_uri: str = ""  # empty means file://<state_dir>/results, filled by resolve()
    allowed_url_hosts: frozenset[str] = field(default_factory=frozenset)
    max_body_bytes: int = 1024 * 1024
    max_download_bytes: int = 2 * 1024**3
    processor: str = DEFAULT_PROCESSOR
    identity_audience: str | None = None

    @property
    def auth_secret(self) -> Secret | None:
        """The secret the receiver checks tokens with, for the configured ``auth_mode``."""
        return self.jwt_secret if self.auth_mode == "jwt" else self.token


KEYS: tuple[str, ...] = tuple(f.name for f in dataclasses.fields(Settings))
SECRET_KEYS = frozenset({"jwt_secret", "token", "saturno_token"})
