"""Fixtures for the offline infrastructure checks: an offline Terraform, the settings
module's outputs (user-data rendered by Terraform itself) and the agent's key list.

Every check skips, saying why, when its tool is missing; CI installs them all.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from typing import Any

import pytest

from tests.infra.tools import SETTINGS_DIR, VARIANTS, contract_keys, require, run


@pytest.fixture(scope="session")
def terraform_env(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """Environment for offline Terraform runs; the settings module is initialised in it.

    The working data goes to a temp dir (never terraform/.terraform), the CLI config is an
    empty file and the version check is off, so nothing touches the network.
    """
    require("terraform")
    work = tmp_path_factory.mktemp("terraform")
    rc = work / "terraformrc"
    rc.write_text("")
    env = {
        **os.environ,
        "TF_DATA_DIR": str(work / "data"),
        "TF_CLI_CONFIG_FILE": str(rc),
        "TF_IN_AUTOMATION": "1",
        "TF_INPUT": "0",
        "CHECKPOINT_DISABLE": "1",
    }
    init = run(["terraform", "init", "-backend=false", "-no-color"], cwd=SETTINGS_DIR, env=env)
    assert init.returncode == 0, init.stdout + init.stderr
    return env


@pytest.fixture(scope="session")
def settings_outputs(
    terraform_env: dict[str, str], tmp_path_factory: pytest.TempPathFactory
) -> Callable[[str], dict[str, Any]]:
    """The settings module's outputs for a named entry of VARIANTS, from a real plan.

    Terraform's own templatefile() renders the user-data: no second renderer to drift.
    """
    cache: dict[str, dict[str, Any]] = {}

    def outputs(variant: str) -> dict[str, Any]:
        if variant not in cache:
            work = tmp_path_factory.mktemp(f"plan-{variant}")
            tfvars = work / "sample.tfvars.json"
            tfvars.write_text(json.dumps(VARIANTS[variant]))
            plan = work / "plan"
            planned = run(
                ["terraform", "plan", "-no-color", f"-var-file={tfvars}", f"-out={plan}"],
                cwd=SETTINGS_DIR,
                env=terraform_env,
            )
            assert planned.returncode == 0, planned.stdout + planned.stderr
            shown = run(
                ["terraform", "show", "-json", str(plan)], cwd=SETTINGS_DIR, env=terraform_env
            )
            assert shown.returncode == 0, shown.stderr
            values = json.loads(shown.stdout)["planned_values"]["outputs"]
            cache[variant] = {name: out["value"] for name, out in values.items()}
        return cache[variant]

    return outputs


@pytest.fixture(scope="session")
def agent_keys() -> tuple[str, ...]:
    """Every configuration key the agent accepts: config.KEYS, else the contract."""
    try:
        from notraining_agent.config import KEYS  # noqa: PLC0415 - the agent may not be written yet
    except ImportError:
        return contract_keys()
    return tuple(KEYS)
