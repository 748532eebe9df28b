"""The #cloud-config that Terraform renders (templatefile, in a real offline plan) is valid
for cloud-init 22.4, installs the agent from a hashed source with no apt, writes the units verbatim
and arms the dead-man's switch before anything can fail."""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.infra.tools import CLOUD_INIT_DIR, REPO, SHA256, VARIANTS, require, run

pytestmark = pytest.mark.infra

Outputs = Callable[[str], dict[str, Any]]
UNITS = ("notraining-agent.service", "notraining-deadman.timer", "notraining-deadman.service")


def cloud_config(outputs: Outputs, variant: str) -> dict[str, Any]:
    text = outputs(variant)["user_data"]
    assert text.startswith("#cloud-config\n")
    parsed: dict[str, Any] = yaml.safe_load(text)
    return parsed


def written(config: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {entry["path"]: entry for entry in config["write_files"]}


@pytest.mark.parametrize("variant", sorted(VARIANTS))
def test_rendered_user_data_passes_cloud_init_schema(
    settings_outputs: Outputs, variant: str, tmp_path: Path
) -> None:
    """`cloud-init schema --config-file` accepts the rendered user-data."""
    require("cloud-init")
    path = tmp_path / "user-data.yaml"
    path.write_text(settings_outputs(variant)["user_data"])
    checked = run(["cloud-init", "schema", "--config-file", str(path)])
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert "Valid cloud-config" in checked.stdout
    assert "deprecat" not in (checked.stdout + checked.stderr).lower()


@pytest.mark.parametrize("variant", sorted(VARIANTS))
def test_units_are_written_verbatim(settings_outputs: Outputs, variant: str) -> None:
    """The unit files land on the VM byte for byte as they are in cloud-init/."""
    files = written(cloud_config(settings_outputs, variant))
    for unit in UNITS:
        entry = files[f"/etc/systemd/system/{unit}"]
        assert entry["content"] == (CLOUD_INIT_DIR / unit).read_text(), unit
        assert entry["permissions"] == "0644"


def test_deadman_deadline_comes_from_terraform(settings_outputs: Outputs) -> None:
    """The timer's drop-in replaces OnBootSec with job + idle timeouts + margin."""
    outputs = settings_outputs("index_version")
    files = written(cloud_config(settings_outputs, "index_version"))
    drop_in = files["/etc/systemd/system/notraining-deadman.timer.d/deadline.conf"]["content"]
    assert "[Timer]\nOnBootSec=\n" in drop_in
    assert f"OnBootSec={outputs['deadman_seconds']}s\n" in drop_in
    assert outputs["deadman_seconds"] == 2 * 3600 + 30 * 60 + 30 * 60


def test_deadman_is_armed_before_the_install(settings_outputs: Outputs) -> None:
    """runcmd enables both units (one reload), starts the timer, installs, then starts the
    agent without blocking; bytecode is compiled after that, at idle priority."""
    commands = [" ".join(c) for c in cloud_config(settings_outputs, "gcs_wheelhouse")["runcmd"]]
    assert commands == [
        "systemctl enable notraining-deadman.timer notraining-agent.service",
        "systemctl start notraining-deadman.timer",
        "sh -c /usr/local/sbin/notraining-agent-install || systemctl poweroff",
        "systemctl start --no-block notraining-agent.service",
        "sh -c exec systemd-run --no-block --unit=notraining-precompile"
        " -p CPUSchedulingPolicy=idle -p IOSchedulingClass=idle"
        " /opt/notraining-agent/bin/python -m compileall -q -j 0"
        " /opt/notraining-agent/lib/python3*/site-packages/google /opt/notraining-agent/lib",
    ]


def test_no_interactive_user_is_created(settings_outputs: Outputs) -> None:
    """Only a locked system account with no shell: no default user, no password, no key."""
    config = cloud_config(settings_outputs, "index_version")
    assert config["users"] == [
        {
            "name": "notraining-agent",
            "gecos": "notraining-agent daemon",
            "system": True,
            "lock_passwd": True,
            "no_create_home": True,
            "shell": "/usr/sbin/nologin",
        }
    ]
    assert config["disable_root"] is True
    assert config["ssh_pwauth"] is False
    assert not {"chpasswd", "password", "ssh_authorized_keys"} & set(config)


def test_config_file_holds_only_agent_keys(
    settings_outputs: Outputs, agent_keys: tuple[str, ...]
) -> None:
    """config.yaml names known keys only, and its state_dir is the unit's StateDirectory."""
    files = written(cloud_config(settings_outputs, "index_version"))
    config = yaml.safe_load(files["/etc/notraining-agent/config.yaml"]["content"])
    assert set(config) <= set(agent_keys)
    assert config["state_dir"] == "/var/lib/notraining-agent"
    unit = (CLOUD_INIT_DIR / "notraining-agent.service").read_text()
    assert "StateDirectory=notraining-agent\n" in unit
    assert "--config /etc/notraining-agent/config.yaml" in unit


def install_script(outputs: Outputs, variant: str) -> str:
    files = written(cloud_config(outputs, variant))
    entry = files["/usr/local/sbin/notraining-agent-install"]
    assert entry["permissions"] == "0755"
    script: str = entry["content"]
    return script


def test_gcs_wheelhouse_is_downloaded_checked_then_installed_offline(
    settings_outputs: Outputs,
) -> None:
    """The wheelhouse comes from GCS with the VM's token, passes sha256sum, then uv installs
    its gcs requirements with no index at all."""
    script = install_script(settings_outputs, "gcs_wheelhouse")
    url = "https://storage.googleapis.com/example-artifacts/dist/notraining_agent-0.1.0-wheelhouse-gcs.tar"
    download = script.index(url)
    check = script.index(f'echo "{SHA256}  $archive" | sha256sum --check --strict -')
    unpack = script.index('tar -xf "$archive" -C "$work"')
    install = script.index(
        '"$uv" pip install --quiet --python "$venv/bin/python" --offline --no-index \\\n'
        '  --find-links "$house" --require-hashes -r "$requirements"'
    )
    assert download < check < unpack < install
    assert 'requirements="$house/requirements-gcs.txt"' in script
    assert "--index-url" not in script
    # The token reaches curl on stdin (-H @-), never on a command line other users can see.
    assert "printf 'Authorization: Bearer %s\\n' \"$token\" |" in script
    assert "curl -fsS --retry 5 -H @-" in script
    assert "Bearer $token" not in script


def test_index_version_is_pinned_and_hashed(settings_outputs: Outputs) -> None:
    """Without a wheelhouse, uv installs exactly agent_version from pip_index_url, the agent
    by agent_wheel_sha256 and every dependency by the lock's hashes."""
    script = install_script(settings_outputs, "index_version")
    assert (
        "--index-url 'https://us-python.pkg.dev/example-project/agents/simple/' \\\n"
        "  --require-hashes -r /usr/local/share/notraining-agent/requirements.txt" in script
    )
    assert "curl" not in script
    files = written(cloud_config(settings_outputs, "index_version"))
    pinned = files["/usr/local/share/notraining-agent/requirements.txt"]["content"]
    assert f"notraining-agent==0.1.0 \\\n    --hash=sha256:{SHA256}\n" in pinned
    locked = (REPO / "requirements" / "agent.txt").read_text()
    assert pinned.endswith(locked)
    installer = (REPO / "requirements" / "installer.txt").read_text()
    for digest in re.findall(r"--hash=sha256:([0-9a-f]{64})", installer):
        assert f'"{digest}"' in script


@pytest.mark.parametrize("variant", sorted(VARIANTS))
def test_no_boot_step_needs_apt_pip_or_ensurepip(settings_outputs: Outputs, variant: str) -> None:
    """The install uses uv (from the wheelhouse or fetched by hash), never apt, pip or venv's
    ensurepip, so an image without python3-venv and without an apt mirror still boots."""
    script = install_script(settings_outputs, variant)
    commands = "\n".join(ln for ln in script.splitlines() if not ln.lstrip().startswith("#"))
    for word in ("apt-get", "apt ", "python3-venv", "ensurepip", "-m venv", "bin/pip"):
        assert word not in commands, word
    assert '"$uv" venv --quiet --python "$(command -v python3)" "$venv"' in script
    assert "UV_PYTHON_DOWNLOADS=never" in script


@pytest.mark.parametrize("variant", sorted(VARIANTS))
def test_install_script_is_valid_posix_sh(
    settings_outputs: Outputs, variant: str, tmp_path: Path
) -> None:
    """`sh -n` parses the install script (dash on Ubuntu runs it)."""
    sh = require("sh")
    path = tmp_path / "install.sh"
    path.write_text(install_script(settings_outputs, variant))
    parsed = run([sh, "-n", str(path)])
    assert parsed.returncode == 0, parsed.stderr
    assert install_script(settings_outputs, variant).startswith("#!/bin/sh\n")
