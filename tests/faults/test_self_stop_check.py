"""``can_self_stop`` at boot (issue 4, item 5), as the real agent reports it to Saturno.

The agent asks ``testIamPermissions`` for the permission its ``self_stop`` mode
needs, but only when the default service account's scopes include ``compute``
or ``cloud-platform`` (without one, the token could not stop the VM whatever IAM
says). ``false`` is logged as a warning: then only Saturno and GCE's
``max_run_duration`` can end the VM. When IAM could not be asked (a 403, which is what
the terraform module's role gets, since the call needs ``compute.instances.list``; an
error; a hang) the report says ``null``, never a ``false`` it does not know. The unit
cases of the check itself are in tests/unit/test_compute.py; these run the whole boot.
"""

from __future__ import annotations

from typing import Any

import pytest
from notraining_testkit.emulators.suite import AgentProcess

from tests.faults.conftest import STEP_TIMEOUT, Scene

pytestmark = [pytest.mark.integration]

COMPUTE = "https://www.googleapis.com/auth/compute"
CLOUD = "https://www.googleapis.com/auth/cloud-platform"
READONLY = "https://www.googleapis.com/auth/compute.readonly"
EMAIL = "https://www.googleapis.com/auth/userinfo.email"
WARNING = "can_self_stop is false"
UNKNOWN = "so it is unknown"
LIST = "compute.instances.list"
"""testIamPermissions needs it on the project; without it GCE (and the emulator) answer 403."""


async def _boot_report(
    scene: Scene, self_stop: str = "stop"
) -> tuple[dict[str, Any], AgentProcess]:
    """Start an agent, return its boot report once Saturno has it."""
    agent = scene.agent(self_stop=self_stop)
    await agent.start()
    (report,) = await scene.world.saturno.wait_for("register", timeout=STEP_TIMEOUT)
    return report.body, agent


async def _warned(agent: AgentProcess, text: str = WARNING) -> bool:
    """Whether the agent logged ``text`` (default: it cannot stop itself) before idling."""
    await agent.wait_for_log(lambda x: x.get("state") == "idle", STEP_TIMEOUT)
    return any(text in line.get("message", "") for line in agent.lines)


@pytest.mark.parametrize(
    ("self_stop", "granted", "expected"),
    [
        ("stop", None, True),  # everything granted
        ("stop", (LIST, "compute.instances.stop"), True),
        ("stop", (LIST,), False),  # the emulator grants nothing: GCE omits the key
        ("stop", (LIST, "compute.instances.delete"), False),
        ("delete", (LIST, "compute.instances.delete"), True),
        ("delete", (LIST, "compute.instances.stop"), False),  # may stop, not delete
    ],
)
async def test_boot_report_says_whether_iam_grants_the_stop(
    scene: Scene, self_stop: str, granted: tuple[str, ...] | None, expected: bool
) -> None:
    """The boot report's can_self_stop follows IAM for the mode's permission; false warns."""
    if granted is None:
        scene.world.compute.grant_all()
    else:
        scene.world.compute.grant(*granted)
    report, agent = await _boot_report(scene, self_stop=self_stop)
    assert report["can_self_stop"] is expected
    (call,) = scene.world.compute.calls_for("test_iam_permissions")
    assert call.body == {"permissions": [f"compute.instances.{self_stop}"]}
    assert await _warned(agent) is not expected


async def test_the_modules_role_gets_null_and_an_info_line(scene: Scene) -> None:
    """The terraform module's role may stop the VM but not list instances, so GCE answers
    testIamPermissions 403: the report says null, and the log says why at INFO, not as a fault."""
    scene.world.compute.grant("compute.instances.stop")
    report, agent = await _boot_report(scene)
    assert report["can_self_stop"] is None
    await agent.wait_for_log(lambda x: x.get("state") == "idle", STEP_TIMEOUT)
    (line,) = [x for x in agent.lines if LIST in x.get("message", "")]
    assert line["severity"] == "INFO"
    assert "can_self_stop is unknown" in line["message"]
    assert not await _warned(agent)


@pytest.mark.parametrize(
    ("scopes", "expected"),
    [
        ((CLOUD, EMAIL), True),
        ((COMPUTE,), True),
        ((READONLY, EMAIL), False),  # read-only compute cannot stop anything
        ((EMAIL,), False),
        ((), False),
    ],
)
async def test_scopes_gate_the_check(scene: Scene, scopes: tuple[str, ...], expected: bool) -> None:
    """Without the compute or cloud-platform scope the answer is false, IAM not even asked."""
    scene.world.metadata.scopes = scopes
    report, agent = await _boot_report(scene)
    assert report["can_self_stop"] is expected
    assert bool(scene.world.compute.calls_for("test_iam_permissions")) is expected
    assert await _warned(agent) is not expected


@pytest.mark.parametrize("status", [403, 500])
async def test_iam_check_failing_still_sends_the_boot_report(scene: Scene, status: int) -> None:
    """testIamPermissions answering 403 or 500: can_self_stop null (unknown, not false), the
    boot report goes out, and the agent says why it does not know."""
    scene.world.compute.fail(status, operation="test_iam_permissions")
    report, agent = await _boot_report(scene)
    assert report["can_self_stop"] is None
    assert not await _warned(agent)
    assert await _warned(agent, "can_self_stop is unknown" if status == 403 else UNKNOWN)


@pytest.mark.slow
async def test_iam_check_hanging_delays_the_boot_report_boundedly(scene: Scene) -> None:
    """A Compute API that never answers costs the boot report no more than the check's own
    bound: the one call, still unanswered (the emulator holds it until it closes), ends in
    the TimeoutError the agent logs, and the report goes out with null. How long the bound
    is (10 s) is the check's; the test does not time it."""
    scene.world.compute.hang(operation="test_iam_permissions")
    report, agent = await _boot_report(scene)
    assert report["can_self_stop"] is None
    assert len(scene.world.compute.calls_for("test_iam_permissions")) == 1
    assert await _warned(agent, "testIamPermissions failed (TimeoutError")
    assert await _warned(agent, UNKNOWN)
