"""What the Terraform source says, read with python-hcl2: the notraining-* attributes are
the agent's own keys, the IAM stays within its list, and the two variable declarations
(root and settings module) cannot drift apart."""

from __future__ import annotations

import re
from functools import cache
from pathlib import Path
from typing import Any

import pytest
from hcl2.api import load as load_hcl

from tests.infra.tools import SETTINGS_DIR, TERRAFORM_DIR, contract_keys

pytestmark = pytest.mark.infra

SELF_STOP_PERMISSIONS = {
    "compute.instances.stop",
    "compute.instances.delete",
}
"""What self-stop needs, and the ceiling for the custom role: never compute.instances.list
(testIamPermissions wants it on the project, where no instance condition narrows it)."""
GRANTED_ROLES = {
    "roles/secretmanager.secretAccessor",  # on the auth secret only
    "roles/storage.objectViewer",  # on the wheel's bucket only
    "roles/storage.objectUser",  # on the output bucket only
    "roles/iam.serviceAccountUser",  # Saturno, on the agent's service account only
}
SECRET_KEYS = {"jwt_secret", "token", "saturno_token"}


@cache
def load(path: Path) -> dict[str, Any]:
    with path.open(encoding="utf-8") as fh:
        parsed: dict[str, Any] = load_hcl(fh)
    return parsed


def one(value: Any) -> Any:
    """python-hcl2 wraps attribute values and blocks in one-element lists; unwrap them."""
    while isinstance(value, list) and len(value) == 1:
        value = value[0]
    return value


def resources(path: Path) -> dict[str, dict[str, Any]]:
    """``{"type.name": body}`` for every resource block of a file."""
    found: dict[str, dict[str, Any]] = {}
    for block in load(path).get("resource", []):
        for kind, named in block.items():
            for name, body in named.items():
                found[f"{kind}.{name}"] = body
    return found


def local(name: str) -> Any:
    for block in load(SETTINGS_DIR / "main.tf")["locals"]:
        if name in block:
            return one(block[name])
    raise AssertionError(f"local.{name} is gone from modules/settings/main.tf")


def variables(path: Path) -> dict[str, dict[str, Any]]:
    return {name: body for block in load(path)["variable"] for name, body in block.items()}


def attribute(key: str) -> str:
    return "notraining-" + key.replace("_", "-")


def test_metadata_attributes_are_keys_the_agent_accepts(agent_keys: tuple[str, ...]) -> None:
    """Every notraining-* attribute the template sets names a key of the agent's config."""
    names = set(local("agent_attributes"))
    accepted = {attribute(key) for key in agent_keys}
    assert names, "no notraining-* attribute found"
    assert names - accepted == set()


def test_metadata_never_carries_a_secret_or_a_job() -> None:
    """Secrets go through notraining-secret-ref; notraining-job is Saturno's, per VM."""
    names = set(local("agent_attributes"))
    assert names & {attribute(key) for key in SECRET_KEYS} == set()
    assert "notraining-job" not in names
    assert "notraining-secret-ref" in names
    assert "notraining-allow-weak-secret" not in names


def test_contract_table_and_agent_keys_agree(agent_keys: tuple[str, ...]) -> None:
    """CONTRACT.md section 2 and notraining_agent.config.KEYS list the same keys."""
    assert set(contract_keys()) == set(agent_keys)


def test_self_stop_role_holds_nothing_beyond_its_list() -> None:
    """The custom role's permissions come from one table holding only stop/delete."""
    table = str(local("self_stop_permissions"))
    permissions = set(re.findall(r"'([a-z]+\.[a-zA-Z]+\.[a-zA-Z]+)'", table))
    assert permissions, table
    assert permissions <= SELF_STOP_PERMISSIONS
    role = resources(TERRAFORM_DIR / "main.tf")["google_project_iam_custom_role.self_stop"]
    assert one(role["permissions"]) == "${module.settings.self_stop_permissions}"


def test_self_stop_binding_is_conditioned_on_the_instance_names() -> None:
    """The role is bound to the agent's account only for instances named <prefix>-*."""
    binding = resources(TERRAFORM_DIR / "main.tf")["google_project_iam_member.self_stop"]
    assert one(binding["member"]) == "${local.agent_member}"
    condition = one(binding["condition"])
    assert one(condition["expression"]) == "${module.settings.instance_name_condition}"
    expression = local("instance_name_condition")
    assert 'resource.name.extract(\\"/instances/{name}\\").startsWith(' in expression
    assert "${var.name_prefix}-" in expression


def test_only_narrow_predefined_roles_are_granted() -> None:
    """No admin, editor or owner role anywhere: only the four scoped grants."""
    for path in TERRAFORM_DIR.rglob("*.tf"):
        for address, body in resources(path).items():
            role = one(body.get("role", ""))
            if isinstance(role, str) and role.startswith("roles/"):
                assert role in GRANTED_ROLES, f"{address} grants {role}"
        text = path.read_text(encoding="utf-8")
        assert not re.search(r"roles/(owner|editor|compute\.(instanceAdmin|admin))", text), path


def test_the_secret_is_read_by_the_agent_alone() -> None:
    """The accessor binding is authoritative and lists the agent's service account only."""
    binding = resources(TERRAFORM_DIR / "main.tf")[
        "google_secret_manager_secret_iam_binding.auth_accessor"
    ]
    assert one(binding["members"]) == "${local.agent_member}"
    assert "secret_data" not in (TERRAFORM_DIR / "main.tf").read_text(encoding="utf-8")


def test_template_metadata_locks_down_access() -> None:
    """OS Login on, project SSH keys blocked, serial port off, guest attributes on."""
    template = resources(TERRAFORM_DIR / "main.tf")["google_compute_instance_template.agent"]
    metadata = one(template["metadata"])
    assert metadata.startswith("${merge(module.settings.metadata,")
    for key, value in {
        "enable-oslogin": "TRUE",
        "block-project-ssh-keys": "true",
        "serial-port-enable": "FALSE",
        "enable-guest-attributes": "TRUE",
    }.items():
        assert f"'{key}': '{value}'" in metadata, key


def test_template_is_shielded_and_uses_its_own_identity() -> None:
    """Shielded VM fully on, auto-deleted boot disk, dedicated service account, no
    external IP unless asked, max_run_duration wired to the settings module."""
    template = resources(TERRAFORM_DIR / "main.tf")["google_compute_instance_template.agent"]
    shielded = one(template["shielded_instance_config"])
    assert all(one(shielded[k]) is True for k in shielded if k.startswith("enable_"))
    assert len([k for k in shielded if k.startswith("enable_")]) == 3
    disk = one(template["disk"])
    assert one(disk["auto_delete"]) is True and one(disk["boot"]) is True
    account = one(template["service_account"])
    assert one(account["email"]) == "${google_service_account.agent.email}"
    nic = one(template["network_interface"])
    external = one(nic["dynamic"])["access_config"]
    assert one(external["for_each"]) == "${var.assign_external_ip ? [1] : []}"
    scheduling = one(template["scheduling"])
    assert "max_run_duration" in one(scheduling["dynamic"])
    assert one(template["can_ip_forward"]) is False


def test_network_links_come_whole_from_the_settings_module() -> None:
    """Template and firewall use the settings module's full links and project: no bare
    name left for the provider to resolve in its own project or region (Shared VPC)."""
    main = resources(TERRAFORM_DIR / "main.tf")
    nic = one(main["google_compute_instance_template.agent"]["network_interface"])
    assert one(nic["subnetwork"]) == "${module.settings.subnetwork_self_link}"
    # python-hcl2 spells HCL's null as None inside expressions.
    network = one(nic["network"]).replace("None", "null")
    assert network == (
        "${module.settings.subnetwork_self_link == null ? module.settings.network_self_link : null}"
    )
    assert "subnetwork_project" not in nic
    rule = main["google_compute_firewall.receiver"]
    assert one(rule["project"]) == "${module.settings.network_project}"
    assert one(rule["network"]) == "${module.settings.network_self_link}"


def test_firewall_admits_only_saturno_to_the_receiver() -> None:
    """One TCP port, Saturno's ranges, the agent's service account as target, logged."""
    rule = resources(TERRAFORM_DIR / "main.tf")["google_compute_firewall.receiver"]
    assert one(rule["direction"]) == "INGRESS"
    assert one(rule["source_ranges"]) == "${var.saturno_source_ranges}"
    assert one(rule["target_service_accounts"]) == "${google_service_account.agent.email}"
    allow = one(rule["allow"])
    assert one(allow["protocol"]) == "tcp"
    assert one(allow["ports"]) == "${tostring(var.port)}"
    assert one(one(rule["log_config"])["metadata"]) == "INCLUDE_ALL_METADATA"
    assert "source_tags" not in rule


def test_root_and_settings_declare_the_same_variables() -> None:
    """Same names, types, defaults and descriptions; validation only in the settings."""
    root = variables(TERRAFORM_DIR / "variables.tf")
    settings = variables(SETTINGS_DIR / "variables.tf")
    assert list(root) == list(settings)
    for name, body in root.items():
        assert "validation" not in body, f"{name}: validation belongs in modules/settings"
        for key in ("type", "default", "description", "nullable", "sensitive"):
            assert body.get(key) == settings[name].get(key), f"{name}.{key} differs"


def test_root_passes_every_variable_to_the_settings_module() -> None:
    """module "settings" receives each variable under its own name, unchanged."""
    module = one(load(TERRAFORM_DIR / "main.tf")["module"])["settings"]
    passed = {k: one(v) for k, v in module.items() if not k.startswith("__") and k != "source"}
    names = variables(TERRAFORM_DIR / "variables.tf")
    assert passed == {name: f"${{var.{name}}}" for name in names}


def test_example_passes_only_inputs_the_module_declares() -> None:
    """examples/basic calls the module with known inputs, the Shared VPC ones included."""
    example = TERRAFORM_DIR / "examples" / "basic" / "main.tf"
    module = one(load(example)["module"])["notraining_agent"]
    passed = {k for k in module if not k.startswith("__") and k != "source"}
    assert passed <= set(variables(TERRAFORM_DIR / "variables.tf"))
    assert {"network", "subnetwork", "subnetwork_project", "region"} <= passed


def test_readme_tables_list_every_input_and_output() -> None:
    """terraform/README.md has one table row per variable and per output, no stale row."""
    readme = (TERRAFORM_DIR / "README.md").read_text(encoding="utf-8")
    inputs = readme.split("## Inputs", 1)[1].split("## Outputs", 1)
    rows = [set(re.findall(r"^\| `([a-z0-9_]+)` \|", part, re.MULTILINE)) for part in inputs]
    outputs = {name for block in load(TERRAFORM_DIR / "outputs.tf")["output"] for name in block}
    assert rows[0] == set(variables(TERRAFORM_DIR / "variables.tf"))
    assert rows[1] == outputs
