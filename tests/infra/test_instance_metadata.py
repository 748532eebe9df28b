"""The template's metadata as Terraform renders it: the serial console goes to Cloud
Logging unless turned off, so the agent's log lines outlive the VM."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

pytestmark = pytest.mark.infra

Outputs = Callable[[str], dict[str, Any]]


def test_serial_port_logging_is_on_by_default(settings_outputs: Outputs) -> None:
    """The module's defaults render serial-port-logging-enable = TRUE."""
    metadata = settings_outputs("index_version")["metadata"]
    assert metadata["serial-port-logging-enable"] == "TRUE"


def test_serial_port_logging_variable_turns_it_off(settings_outputs: Outputs) -> None:
    """serial_port_logging = false renders FALSE, and the key stays present."""
    metadata = settings_outputs("gcs_wheelhouse")["metadata"]
    assert metadata["serial-port-logging-enable"] == "FALSE"


def test_serial_port_logging_leaves_the_agent_keys_alone(settings_outputs: Outputs) -> None:
    """The key sits beside the notraining-* attributes, not among the agent's settings."""
    outputs = settings_outputs("index_version")
    assert "serial-port-logging-enable" not in outputs["agent_metadata"]
    assert set(outputs["metadata"]) == {
        *outputs["agent_metadata"],
        "user-data",
        "serial-port-logging-enable",
    }
