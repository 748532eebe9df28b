"""The user-data and notraining-* attributes exactly as Terraform renders them.

Same path as the infra tests: ``terraform plan`` on the provider-free settings module
(offline), then its planned outputs. The boot test adds to the user-data only by
appending runcmd items (test probes), never by editing what Terraform wrote.
"""

from __future__ import annotations

import json
import os
import shlex
import shutil
import subprocess
import tempfile
import threading
from pathlib import Path
from typing import Any

import yaml

from tests.boot.cache import REPO

SETTINGS_DIR = REPO / "terraform" / "modules" / "settings"


class Renderer:
    """Runs Terraform offline on the settings module; one ``init``, one plan per call."""

    def __init__(self) -> None:
        self._work = Path(tempfile.mkdtemp(prefix="notraining-boot-tf-"))
        rc = self._work / "terraformrc"
        rc.write_text("")
        self._env = {
            **os.environ,
            "TF_DATA_DIR": str(self._work / "data"),
            "TF_CLI_CONFIG_FILE": str(rc),
            "TF_IN_AUTOMATION": "1",
            "TF_INPUT": "0",
            "CHECKPOINT_DISABLE": "1",
        }
        self._run(["terraform", "init", "-backend=false", "-no-color"])
        self._lock = threading.Lock()  # boots run side by side; one plan file at a time

    def _run(self, argv: list[str]) -> str:
        done = subprocess.run(
            argv,
            cwd=SETTINGS_DIR,
            env=self._env,
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
        )
        if done.returncode != 0:
            raise RuntimeError(f"{shlex.join(argv)} failed:\n{done.stderr or done.stdout[-3000:]}")
        return done.stdout

    def outputs(self, variables: dict[str, Any]) -> dict[str, Any]:
        """The settings module's outputs for these input variables."""
        tfvars = self._work / "boot.tfvars.json"
        plan = self._work / "plan"
        with self._lock:
            tfvars.write_text(json.dumps(variables))
            self._run(["terraform", "plan", "-no-color", f"-var-file={tfvars}", f"-out={plan}"])
            shown = json.loads(self._run(["terraform", "show", "-json", str(plan)]))
        values = shown["planned_values"]["outputs"]
        return {name: out["value"] for name, out in values.items()}

    def close(self) -> None:
        """Remove Terraform's working data."""
        shutil.rmtree(self._work, ignore_errors=True)


def with_runcmd(user_data: str, *commands: str) -> str:
    """``user_data`` with shell commands appended to its runcmd list, nothing else touched.

    The rendered document ends with its runcmd list (the template's last key), so the
    added items are appended as text, and the result is checked to parse that way.
    """
    if not commands:
        return user_data
    before = yaml.safe_load(user_data)
    lines = user_data.rstrip("\n").splitlines()
    top_keys = [
        line for line in lines if line and not line[0].isspace() and not line.startswith("#")
    ]
    if not top_keys or top_keys[-1] != "runcmd:":
        raise RuntimeError("the rendered user-data no longer ends with runcmd: adapt with_runcmd")
    added = "".join(f"  - {json.dumps(['sh', '-c', c])}\n" for c in commands)
    result = user_data.rstrip("\n") + "\n" + added
    after = yaml.safe_load(result)
    if after["runcmd"][: len(before["runcmd"])] != before["runcmd"] or len(after["runcmd"]) != len(
        before["runcmd"]
    ) + len(commands):
        raise RuntimeError("appending to runcmd changed the rendered items")
    return result
