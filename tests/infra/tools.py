"""Paths, sample inputs and tool runners shared by the infrastructure checks."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[2]
TERRAFORM_DIR = REPO / "terraform"
SETTINGS_DIR = TERRAFORM_DIR / "modules" / "settings"
CLOUD_INIT_DIR = REPO / "cloud-init"
CONTRACT = REPO.parent / "shared" / "CONTRACT.md"

SHA256 = "0123456789abcdef" * 4
BASE_VARIABLES: dict[str, Any] = {
    "project_id": "example-project",
    "register_url": "https://saturno.example.com/api/notraining/register/",
    "done_url": "https://saturno.example.com/api/notraining/done/",
    "saturno_source_ranges": ["10.10.0.0/24"],
}
VARIANTS: dict[str, dict[str, Any]] = {
    # The release's wheelhouse from Cloud Storage, results to a bucket, every optional setting on.
    "gcs_wheelhouse": {
        **BASE_VARIABLES,
        "agent_wheelhouse_url": "gs://example-artifacts/dist/notraining_agent-0.1.0-wheelhouse-gcs.tar",
        "agent_wheelhouse_sha256": SHA256,
        "output_uri": "gs://example-results/notraining",
        "jwt_audience": "notraining",
        "identity_audience": "https://saturno.example.com",
        "allowed_url_hosts": ["art.internal:8080"],
        "max_body_bytes": 65536,
        "max_download_bytes": 1073741824,
        "processor": "manifest",
        "self_stop": "delete",
        "serial_port_logging": False,
    },
    # A pinned, hashed version from a private index, the module's defaults otherwise.
    "index_version": {
        **BASE_VARIABLES,
        "agent_version": "0.1.0",
        "agent_wheel_sha256": SHA256,
        "pip_index_url": "https://us-python.pkg.dev/example-project/agents/simple/",
    },
}


def require(tool: str) -> str:
    """The tool's path; else skip (fail under CI) saying which package provides it."""
    path = shutil.which(tool)
    if path is None:
        hint = {
            "terraform": "install Terraform >= 1.9",
            "cloud-init": "apt-get install cloud-init",
            "systemd-analyze": "apt-get install systemd",
        }.get(tool, f"install {tool}")
        message = f"{tool} is not on PATH ({hint})"
        if os.environ.get("CI") == "true":  # CI installs every tool: missing is a failure
            pytest.fail(message)
        pytest.skip(message)
    return path


def run(
    argv: list[str],
    *,
    cwd: Path | None = None,
    env: Mapping[str, str] | None = None,
    timeout: float = 110.0,
) -> subprocess.CompletedProcess[str]:
    """Run a tool to completion, capturing text output (the caller asserts on it)."""
    return subprocess.run(
        argv, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout, check=False
    )


def contract_keys() -> tuple[str, ...]:
    """The keys of the table in CONTRACT.md section 2, in order."""
    if not CONTRACT.is_file():
        pytest.skip(f"{CONTRACT} is missing (shared/ must sit beside the repository)")
    text = CONTRACT.read_text(encoding="utf-8")
    section = text.split("## 2.", 1)[1].split("\n## ", 1)[0]
    return tuple(re.findall(r"^\| `([a-z_]+)` \|", section, flags=re.MULTILINE))
