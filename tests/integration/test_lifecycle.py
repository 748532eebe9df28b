"""The real agent process, from boot to exit, against the emulators (issue 2's proof)."""

from __future__ import annotations

import asyncio
import hashlib
import json
import signal
from pathlib import Path

import pytest
import requests
from notraining_agent.cli.submit import submit
from notraining_testkit.emulators.metadata import DEFAULT_ACCESS_TOKEN
from notraining_testkit.emulators.suite import AgentProcess, World

from tests.integration.conftest import (
    JOB_TIMEOUT,
    AgentFactory,
    boot,
    fake_systemctl_calls,
    saturno_token,
)

pytestmark = pytest.mark.integration


async def test_happy_path_from_boot_report_to_stop_request(
    world: World, agents: AgentFactory
) -> None:
    """Boot report, 200 accepted, manifest, end report, stop with the metadata token, exit 0."""
    agent = agents()
    report, url = await boot(world, agent)
    assert report["name"] == "notraining-vm-1"
    assert report["ip"] == "203.0.113.10"  # the external IP wins when there is one
    assert report["internal_ip"] == "10.142.0.2"
    assert report["zone"] == "us-east1-b"
    assert report["project"] == "demo-project"
    assert isinstance(report["instance_id"], str)
    assert isinstance(report["port"], int)
    assert report["can_self_stop"] is True
    assert report["boot_id"]

    payload = world.art.job_payload("ntd-1", base_url=world.url("art"))
    answer = await submit(url, payload, authorization=saturno_token(world))
    assert (answer.status, answer.body) == (
        200,
        {"status": "accepted", "ntd_transaction_id": "ntd-1"},
    )

    end = (await world.saturno.wait_for("done", timeout=JOB_TIMEOUT))[0].body
    assert end["status"] == "done", end
    assert end["ntd_transaction_id"] == "ntd-1"
    assert end["no_transaction_id"] == "no-ntd-1"
    assert end["error"] is None
    assert end["arts"] == len(world.art.package.names)
    assert end["started_at"].endswith("Z") and end["finished_at"].endswith("Z")
    output = Path(end["output_uri"].removeprefix("file://"))
    assert output.parts[-5:] == ("MX", "instagram", "POP", "summer", "ntd-1")
    manifest = json.loads((output / "manifest.json").read_text(encoding="utf-8"))
    by_name = {art["name"]: art for art in manifest["arts"]}
    for name, data in world.art.package.files.items():
        assert by_name[name]["sha256"] == hashlib.sha256(data).hexdigest()
        assert by_name[name]["format"] == "PNG"
        assert (by_name[name]["width"], by_name[name]["height"]) == (640, 480)

    assert await agent.wait(JOB_TIMEOUT) == 0
    stops = world.compute.calls_for("stop")
    assert len(stops) == 1
    assert stops[0].authorization == f"Bearer {DEFAULT_ACCESS_TOKEN}"
    assert stops[0].path.endswith(
        "/projects/demo-project/zones/us-east1-b/instances/notraining-vm-1/stop"
    )
    states = world.metadata.guest_attribute_history("notraining/state")
    assert states[-3:] == ["reporting", "grace", "stopping"]
    assert "busy" in states


async def test_the_seeds_own_client_gets_200(world: World, agents: AgentFactory) -> None:
    """requests.post(url, headers={"Authorization": TOKEN}, data=payload), as the seed does."""
    _, url = await boot(world, agents())
    payload = world.art.job_payload("ntd-seed", base_url=world.url("art"))
    token = saturno_token(world)
    response = await asyncio.to_thread(
        requests.post,
        f"{url}/receiver_no_training/",
        headers={"Authorization": token},
        data=payload,
        timeout=10,
    )
    assert response.status_code == 200
    assert response.json() == {"status": "accepted", "ntd_transaction_id": "ntd-seed"}
    end = (await world.saturno.wait_for("done", timeout=JOB_TIMEOUT))[0].body
    assert end["status"] == "done"


async def test_every_refusal_of_the_receiver(world: World, agents: AgentFactory) -> None:
    """401, 415, 400 naming each field, 413; then a job, a re-post (200) and a second job (409)."""
    _, url = await boot(world, agents(max_body_bytes="4096"))
    endpoint = f"{url}/receiver_no_training/"
    token = saturno_token(world)

    def post(**kwargs: object) -> requests.Response:
        return requests.post(endpoint, timeout=10, **kwargs)  # type: ignore[arg-type]

    missing = await asyncio.to_thread(post, data={"ntd_transaction_id": "x"})
    assert missing.status_code == 401
    assert missing.headers["WWW-Authenticate"].startswith("Bearer")
    wrong = await asyncio.to_thread(post, headers={"Authorization": "Bearer nope"}, data={})
    assert wrong.status_code == 401
    text = await asyncio.to_thread(
        post, headers={"Authorization": token, "Content-Type": "text/plain"}, data=b"hello"
    )
    assert text.status_code == 415
    bad = await asyncio.to_thread(
        post, headers={"Authorization": token}, json={"zip_art": "ftp://x/y.zip"}
    )
    assert bad.status_code == 400
    assert {"ntd_transaction_id", "zip_art"} <= set(bad.json()["errors"])
    big = await asyncio.to_thread(
        post, headers={"Authorization": token}, json={"label": "x" * 10_000}
    )
    assert big.status_code == 413

    payload = world.art.job_payload("ntd-a", base_url=world.url("art"))
    first = await asyncio.to_thread(post, headers={"Authorization": token}, data=payload)
    assert first.status_code == 200
    again = await asyncio.to_thread(post, headers={"Authorization": token}, data=payload)
    assert again.status_code == 200
    assert again.json()["ntd_transaction_id"] == "ntd-a"
    assert again.json()["status"] in ("accepted", "running", "done")
    other = world.art.job_payload("ntd-b", base_url=world.url("art"))
    busy = await asyncio.to_thread(post, headers={"Authorization": token}, data=other)
    assert busy.status_code == 409
    assert busy.json()["current"]["ntd_transaction_id"] == "ntd-a"
    ends = await world.saturno.wait_for("done", timeout=JOB_TIMEOUT)
    assert [e.body["ntd_transaction_id"] for e in ends] == ["ntd-a"]


async def test_saturno_failing_first_calls_keeps_one_idempotency_key(
    world: World, agents: AgentFactory
) -> None:
    """503 twice then 200: the boot report arrives, every try with the same Idempotency-Key."""
    world.saturno.fail("register", 503, times=2)
    await boot(world, agents())
    tries = world.saturno.reports_for("register")
    assert [r.status for r in tries] == [503, 503, 200]
    assert len({r.idempotency_key for r in tries}) == 1


async def test_kill_9_mid_job_then_restart_reports_exactly_once(
    world: World, agents: AgentFactory
) -> None:
    """Crash mid-download, restart on the same state_dir: the job runs again, one end report."""
    world.art.throttle(20_000)
    first = agents()
    _, url = await boot(world, first)
    payload = world.art.job_payload("ntd-crash", base_url=world.url("art"))
    answer = await submit(url, payload, authorization=saturno_token(world))
    assert answer.status == 200
    await first.wait_for_log(lambda line: line.get("event") == "job_started", timeout=JOB_TIMEOUT)
    first.send(signal.SIGKILL)
    assert await first.wait(10) == -signal.SIGKILL

    world.art.throttle(None)
    second = agents()
    await second.start()
    end = await world.saturno.wait_for("done", timeout=JOB_TIMEOUT)
    assert await second.wait(JOB_TIMEOUT) == 0
    ends = world.saturno.reports_for("done")
    assert len(ends) == 1 and ends[0].body["status"] == "done", [e.body for e in ends]
    assert end[0].body["ntd_transaction_id"] == "ntd-crash"
    started = second.events("job_started")
    assert started and "attempt 2 of 3" in started[0]["message"]


async def test_sigterm_during_grace_exits_0_without_stopping(
    world: World, agents: AgentFactory
) -> None:
    """A SIGTERM while waiting for Saturno to stop the VM is a clean exit 0, no stop request."""
    agent = agents(shutdown_grace="60s")
    _, url = await boot(world, agent)
    await submit(
        url,
        world.art.job_payload("ntd-g", base_url=world.url("art")),
        authorization=saturno_token(world),
    )
    await agent.wait_for_log(lambda line: line.get("state") == "grace", timeout=JOB_TIMEOUT)
    agent.send(signal.SIGTERM)
    assert await agent.wait(10) == 0
    assert world.compute.calls_for("stop") == []


async def test_compute_api_failing_falls_back_to_poweroff(
    world: World, agents: AgentFactory, tmp_path: Path
) -> None:
    """Stop requests failing with 500: the agent runs systemctl poweroff and exits 0."""
    world.compute.fail(500, operation="stop", times=None)
    agent = agents(idle_timeout="1s", shutdown_grace="0s")
    await agent.start()
    assert await agent.wait(JOB_TIMEOUT) == 0
    assert len(world.compute.calls_for("stop")) == 3
    assert fake_systemctl_calls(tmp_path) == ["poweroff"]


async def test_nothing_stops_the_vm_exits_3(world: World, agents: AgentFactory) -> None:
    """Compute API failing and poweroff refused: exit code 3."""
    world.compute.fail(500, operation="stop", times=None)
    agent = agents(idle_timeout="1s", shutdown_grace="0s")
    agent.env["FAKE_SYSTEMCTL_EXIT"] = "1"
    await agent.start()
    assert await agent.wait(JOB_TIMEOUT) == 3
    end = world.saturno.reports_for("done")[0].body
    assert end["status"] == "idle_timeout" and end["ntd_transaction_id"] is None


async def test_job_by_metadata_attribute(world: World, agents: AgentFactory) -> None:
    """A job set as instance attribute notraining-job runs without any inbound call."""
    agent = agents()
    await boot(world, agent)
    job = world.art.job_payload("ntd-meta", base_url=world.url("art"))
    world.metadata.set_instance_attribute("notraining-job", json.dumps(job))
    end = (await world.saturno.wait_for("done", timeout=JOB_TIMEOUT))[0].body
    assert (end["ntd_transaction_id"], end["status"]) == ("ntd-meta", "done")
    assert await agent.wait(JOB_TIMEOUT) == 0


async def slow_job_started(world: World, agents: AgentFactory, ntd: str) -> AgentProcess:
    """A booted agent whose job (art served slowly) has just started."""
    world.art.throttle(5_000)
    agent = agents()
    _, url = await boot(world, agent)
    await submit(
        url,
        world.art.job_payload(ntd, base_url=world.url("art")),
        authorization=saturno_token(world),
    )
    await agent.wait_for_log(lambda line: line.get("event") == "job_started", timeout=JOB_TIMEOUT)
    return agent


async def test_preemption_during_the_job_reports_preempted(
    world: World, agents: AgentFactory
) -> None:
    """instance/preempted turning TRUE mid-job: the end report says preempted."""
    await slow_job_started(world, agents, "ntd-p")
    world.metadata.set_preempted(True)
    end = (await world.saturno.wait_for("done", timeout=JOB_TIMEOUT))[0].body
    assert end["status"] == "preempted"
    assert end["ntd_transaction_id"] == "ntd-p"


async def test_preemption_with_its_sigterm_still_reports_preempted(
    world: World, agents: AgentFactory
) -> None:
    """GCE preempts: preempted=TRUE and the ACPI soft-off's SIGTERM at once (a real boot lost
    the report that way). The preempted report arrives, then the agent exits 0."""
    agent = await slow_job_started(world, agents, "ntd-ps")
    world.metadata.set_preempted(True)
    agent.send(signal.SIGTERM)
    assert await agent.wait(JOB_TIMEOUT) == 0
    (end,) = world.saturno.reports_for("done")
    assert (end.body["status"], end.body["ntd_transaction_id"]) == ("preempted", "ntd-ps")
    assert world.compute.calls_for("stop") == []


async def test_bad_config_value_exits_2_with_one_line(world: World, agents: AgentFactory) -> None:
    """An invalid duration: exit 2 at start, one stderr line naming the key and its source."""
    agent = agents(idle_timeout="soon")
    await agent.start()
    assert await agent.wait(JOB_TIMEOUT) == 2
    lines = agent.stderr.strip().splitlines()
    assert len(lines) == 1
    assert "idle_timeout" in lines[0] and "NOTRAINING_IDLE_TIMEOUT" in lines[0]
