"""The units cloud-init installs pass `systemd-analyze verify` silently, the agent's unit
scores at most 2.0 in `systemd-analyze security`, and the unit keeps its promises to the
agent (Type=notify, exit codes 2 and 3 final, poweroff by PID 1)."""

from __future__ import annotations

import configparser
import re
import shlex
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml
from notraining_agent.host.power import EXIT_POWERS_OFF_ENV
from notraining_agent.http.limits import (
    BACKLOG,
    FD_RESERVE,
    MAX_CONNECTIONS,
    WANTED_OPEN_FILES,
    limits_for,
)

from tests.infra.tools import CLOUD_INIT_DIR, require, run

pytestmark = pytest.mark.infra

MAX_EXPOSURE = 2.0
RESTART_MODE_SINCE = 254
RESTART_MODE_IGNORED = "Unknown key 'RestartMode' in section [Service], ignoring."
AGENT_BIN = "opt/notraining-agent/bin/notraining-agent"


def systemd_version() -> int:
    """The major version `systemd-analyze --version` reports (252 on Debian 12)."""
    shown = run([require("systemd-analyze"), "--version"])
    match = re.match(r"systemd (\d+)", shown.stdout)
    assert match, shown.stdout + shown.stderr
    return int(match.group(1))


def system_units() -> Path:
    for candidate in (Path("/usr/lib/systemd/system"), Path("/lib/systemd/system")):
        if (candidate / "sysinit.target").exists():
            return candidate
    pytest.skip("no systemd unit directory with sysinit.target on this machine")


@pytest.fixture
def vm_root(settings_outputs: Callable[[str], dict[str, Any]], tmp_path: Path) -> Path:
    """A file tree holding what cloud-init writes (units, drop-in), the host's systemd
    units, and stand-ins for the executables the units start."""
    require("systemd-analyze")
    root = tmp_path / "root"
    shutil.copytree(system_units(), root / "usr/lib/systemd/system", symlinks=True)
    config = yaml.safe_load(settings_outputs("index_version")["user_data"])
    for entry in config["write_files"]:
        target = root / entry["path"].lstrip("/")
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(entry["content"])
    for executable in (AGENT_BIN, "usr/bin/echo"):
        stand_in = root / executable
        stand_in.parent.mkdir(parents=True, exist_ok=True)
        stand_in.write_text("#!/bin/sh\n")
        stand_in.chmod(0o755)
    return root


@pytest.mark.parametrize(
    "units",
    [("notraining-agent.service",), ("notraining-deadman.timer", "notraining-deadman.service")],
)
def test_verify_prints_nothing(vm_root: Path, units: tuple[str, ...]) -> None:
    """`systemd-analyze verify` is silent on stderr, drop-ins and ExecStart paths included;
    before systemd 254 it may only say that it ignores RestartMode=, which is what we want."""
    paths = [str(vm_root / "etc/systemd/system" / unit) for unit in units]
    verified = run(["systemd-analyze", "verify", f"--root={vm_root}", *paths])
    lines = verified.stderr.splitlines()
    if systemd_version() < RESTART_MODE_SINCE:
        lines = [line for line in lines if not line.endswith(RESTART_MODE_IGNORED)]
    assert lines == []
    assert verified.returncode == 0, verified.stdout


def exposure(unit: Path) -> float:
    """The overall exposure `systemd-analyze security --offline=yes` gives a unit file."""
    require("systemd-analyze")
    scored = run(["systemd-analyze", "security", "--offline=yes", "--no-pager", str(unit)])
    if "--offline" in scored.stderr and "unrecognized" in scored.stderr:
        pytest.skip("systemd-analyze security --offline needs systemd 250 or later")
    match = re.search(r"Overall exposure level for \S+: (\d+\.\d+)", scored.stdout)
    assert match, scored.stdout + scored.stderr
    return float(match.group(1))


@pytest.mark.parametrize("unit", ["notraining-agent.service", "notraining-deadman.service"])
def test_security_exposure_is_at_most_two(unit: str) -> None:
    """The hardened services score at most 2.0 (lower is better)."""
    assert exposure(CLOUD_INIT_DIR / unit) <= MAX_EXPOSURE


def unit_file(name: str) -> configparser.RawConfigParser:
    parser = configparser.RawConfigParser(strict=False, interpolation=None)
    parser.optionxform = str  # type: ignore[assignment,method-assign]
    parser.read_string((CLOUD_INIT_DIR / name).read_text())
    return parser


def test_agent_unit_matches_the_agent() -> None:
    """notify + watchdog, restart on crashes only, 2 and 3 final, poweroff when it ends."""
    unit = unit_file("notraining-agent.service")
    service, section = unit["Service"], unit["Unit"]
    assert service["Type"] == "notify"
    assert service["ExecStart"] == (
        "/opt/notraining-agent/bin/notraining-agent run --config /etc/notraining-agent/config.yaml"
    )
    assert service["Restart"] == "on-failure"
    assert set(service["RestartPreventExitStatus"].split()) == {"2", "3"}
    assert "WatchdogSec" in service
    assert service["StateDirectory"] == "notraining-agent"
    assert service["CapabilityBoundingSet"] == "CAP_NET_BIND_SERVICE"
    assert service["AmbientCapabilities"] == "CAP_NET_BIND_SERVICE"
    assert service["StandardOutput"] == service["StandardError"] == "journal+console"
    assert section["After"] == section["Wants"] == "network-online.target"
    assert "SuccessAction" not in section
    assert "StartLimitBurst" in section and "StartLimitIntervalSec" in section


def test_agent_unit_sets_the_open_files_limit_the_receiver_caps_are_made_for() -> None:
    """LimitNOFILE is set (the sandbox forbids setrlimit) and leaves room past the caps."""
    limit = int(unit_file("notraining-agent.service")["Service"]["LimitNOFILE"])
    assert limit == WANTED_OPEN_FILES
    caps = limits_for(limit)
    assert caps.connections == MAX_CONNECTIONS
    assert limit - caps.connections - BACKLOG >= FD_RESERVE


def test_a_crash_restarts_and_only_a_final_failure_powers_off() -> None:
    """No FailureAction= (it fires on the way to every restart); OnFailure= powers off.

    systemd 252 to 253 skip OnFailure= while a restart is pending, 254 and later skip it
    with RestartMode=direct; FailureAction= fires on every entry into `failed` in both.
    """
    unit = unit_file("notraining-agent.service")
    service, section = unit["Service"], unit["Unit"]
    assert "FailureAction" not in section and "FailureAction" not in service
    assert service["RestartMode"] == "direct"
    assert section["OnFailure"] == "poweroff.target"
    assert section["OnFailureJobMode"] == "replace-irreversibly"
    assert section["StartLimitAction"] == "poweroff"


def test_unit_tells_the_agent_that_exit_0_powers_off() -> None:
    """The variable that makes self_stop poweroff a clean exit sits next to the power-off."""
    unit = unit_file("notraining-agent.service")
    assert unit["Service"]["Environment"] == f"{EXIT_POWERS_OFF_ENV}=1"
    assert unit["Service"]["ExecStopPost"].startswith("-+/bin/sh -c ")


def stop_post(service_result: str, tmp_path: Path) -> list[str]:
    """Run the unit's ExecStopPost= shell as systemd would; return what it asked systemctl."""
    line = unit_file("notraining-agent.service")["Service"]["ExecStopPost"]
    argv = shlex.split(line.removeprefix("-+").replace("$$", "$"))
    calls = tmp_path / "calls"
    fake = tmp_path / "bin" / "systemctl"
    fake.parent.mkdir(exist_ok=True)
    fake.write_text(f'#!/bin/sh\necho "$*" >> {calls}\n')
    fake.chmod(0o755)
    env = {"PATH": f"{fake.parent}:/usr/bin:/bin", "SERVICE_RESULT": service_result}
    subprocess.run(argv, env=env, check=True, timeout=30)
    return calls.read_text().splitlines() if calls.exists() else []


def test_a_clean_exit_starts_the_power_off_as_success_action_would(tmp_path: Path) -> None:
    assert stop_post("success", tmp_path) == [
        "start --no-block --job-mode=replace-irreversibly poweroff.target"
    ]


@pytest.mark.parametrize("result", ["signal", "watchdog", "exit-code", "core-dump", "timeout"])
def test_a_crash_on_its_way_to_a_restart_powers_nothing_off(result: str, tmp_path: Path) -> None:
    """SuccessAction= fired here on systemd 252 (the restart job's stop); this must not."""
    assert stop_post(result, tmp_path) == []


def test_deadman_timer_powers_off_without_python() -> None:
    """The timer starts a service whose only work is a console line and PID 1's poweroff."""
    timer = unit_file("notraining-deadman.timer")
    assert timer["Timer"]["Unit"] == "notraining-deadman.service"
    assert "OnBootSec" in timer["Timer"]
    assert timer["Install"]["WantedBy"] == "timers.target"
    service = unit_file("notraining-deadman.service")
    assert service["Unit"]["SuccessAction"] == service["Unit"]["FailureAction"] == "poweroff"
    assert service["Service"]["ExecStart"].startswith("/usr/bin/echo ")
    assert "python" not in (CLOUD_INIT_DIR / "notraining-deadman.service").read_text().lower()
