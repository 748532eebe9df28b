"""The Terraform module passes its offline gates: fmt, `terraform test` of every
validation in the provider-free settings module, and checkov with no failed check."""

from __future__ import annotations

import json
import os
import re

import pytest

from tests.infra.tools import REPO, SETTINGS_DIR, TERRAFORM_DIR, require, run

pytestmark = pytest.mark.infra


def test_terraform_fmt_is_clean() -> None:
    """Every .tf and .tftest.hcl file is formatted as `terraform fmt` writes it."""
    require("terraform")
    checked = run(
        ["terraform", "fmt", "-check", "-recursive", "-diff", "-no-color", "terraform"], cwd=REPO
    )
    assert checked.returncode == 0, checked.stdout + checked.stderr


def test_settings_module_passes_terraform_test(terraform_env: dict[str, str]) -> None:
    """`terraform test` runs every validation (good and bad values) offline and all pass."""
    tested = run(["terraform", "test", "-no-color"], cwd=SETTINGS_DIR, env=terraform_env)
    assert tested.returncode == 0, tested.stdout + tested.stderr
    summary = re.search(r"Success! (\d+) passed, 0 failed", tested.stdout)
    assert summary, tested.stdout
    assert int(summary.group(1)) >= 100, "the harness lost runs: " + summary.group(0)


def test_every_validation_rule_has_a_refusing_run() -> None:
    """Each validated variable is named by at least one expect_failures run."""
    variables = (SETTINGS_DIR / "variables.tf").read_text(encoding="utf-8")
    validated = set()
    for block in re.split(r'^variable "', variables, flags=re.MULTILINE)[1:]:
        if "validation {" in block:
            validated.add(block.split('"', 1)[0])
    tests = "".join(p.read_text(encoding="utf-8") for p in (SETTINGS_DIR / "tests").glob("*.hcl"))
    refused = set(re.findall(r"expect_failures\s*=\s*\[var\.([a-z0-9_]+)\]", tests))
    assert validated, "no validation found: did variables.tf move?"
    assert validated - refused == set()


def checkov() -> str:
    """checkov from its own venv (its hcl2 would replace python-hcl2's in .venv); under CI a
    missing checkov fails, elsewhere it skips."""
    path = REPO / ".venv-checkov" / "bin" / "checkov"
    if not path.exists():
        message = f"{path} is missing: run `make checkov-venv`"
        if os.environ.get("CI") == "true":
            pytest.fail(message)
        pytest.skip(message)
    return str(path)


@pytest.mark.slow
def test_checkov_finds_no_failed_check_and_every_skip_has_a_reason() -> None:
    """checkov --framework terraform reports 0 failed checks; each skip says why."""
    scanned = run(
        [
            checkov(),
            "-d",
            str(TERRAFORM_DIR),
            "--framework",
            "terraform",
            "--skip-download",
            "--output",
            "json",
            "--compact",
        ],
        cwd=REPO,
    )
    assert scanned.stdout, scanned.stderr
    report = json.loads(scanned.stdout)
    reports = report if isinstance(report, list) else [report]
    failed = [c for r in reports for c in r["results"]["failed_checks"]]
    skipped = [c for r in reports for c in r["results"]["skipped_checks"]]
    assert failed == [], [(c["check_id"], c["resource"]) for c in failed]
    assert sum(r["summary"]["failed"] for r in reports) == 0
    assert sum(r["summary"]["passed"] for r in reports) > 0, "checkov scanned nothing"
    assert all(len(c.get("check_result", {}).get("suppress_comment", "")) > 20 for c in skipped)
    assert scanned.returncode == 0, scanned.stderr
