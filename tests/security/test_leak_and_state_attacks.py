"""A signed URL's query through error texts, and hostile state files (issue 14), on the REAL agent.

A malformed answer from the art server made aiohttp's error text (which quotes the
full URL) the job's error; a state file of the wrong shape crashed every restart.
"""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path

import pytest
from notraining_agent.cli.submit import submit
from notraining_agent.job.spec import JobSpec
from notraining_agent.life.states import JobState
from notraining_agent.life.store import STATE_FILE, AgentRecord, JobRecord, StateStore
from notraining_testkit.emulators.suite import AgentProcess, start_world

from tests.security.harness import BOOT_TIMEOUT, JOB_TIMEOUT, boot_agent, saturno_token

pytestmark = [pytest.mark.integration]

SIGNATURE = "5ec7e75161a7a7e0fc0ffee"


async def _garbage(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """An HTTP answer aiohttp cannot parse (a Content-Length that is not a number)."""
    await reader.readuntil(b"\r\n\r\n")
    writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: many\r\n\r\n")
    await writer.drain()
    writer.close()


async def test_a_malformed_answer_keeps_the_signed_query_out_of_report_and_log(
    tmp_path: Path,
) -> None:
    """The job fails naming the URL without its query; no line of the log has the signature."""
    raw = await asyncio.start_server(_garbage, "127.0.0.1", 0)
    netloc = f"127.0.0.1:{raw.sockets[0].getsockname()[1]}"
    world = await start_world(attributes={"notraining-self-stop": "none"}, shutdown_grace="0s")
    world.metadata.set_instance_attribute(
        "notraining-allowed-url-hosts", f"{world.servers['art'].netloc},{netloc}"
    )
    signed = f"http://{netloc}/pack.zip?X-Goog-Algorithm=GOOG4&X-Goog-Signature={SIGNATURE}"
    agent: AgentProcess | None = None
    try:
        agent, url = await boot_agent(world, tmp_path)
        job = world.art.job_payload(
            "ntd-signed", base_url=world.url("art"), with_paths=False, zip_art=signed
        )
        answer = await submit(url, job, authorization=saturno_token(world))
        assert answer.status == 200, answer.body
        (end,) = await world.saturno.wait_for("done", count=1, timeout=JOB_TIMEOUT)
        await agent.wait(JOB_TIMEOUT)
    finally:
        if agent is not None:
            await agent.close()
        await world.close()
        raw.close()
    assert end.body["status"] == "failed", end.body
    assert f"http://{netloc}/pack.zip" in end.body["error"]
    assert SIGNATURE not in json.dumps(end.body) and "X-Goog" not in end.body["error"]
    assert SIGNATURE not in json.dumps(agent.lines) + agent.stderr


async def test_a_state_file_of_the_wrong_shape_falls_back_and_the_job_still_ends(
    tmp_path: Path,
) -> None:
    """Wrong types in state.json: the agent goes on from state.json.prev and reports the job."""
    world = await start_world(attributes={"notraining-self-stop": "none"}, shutdown_grace="0s")
    state_dir = tmp_path / "state"
    payload = world.art.job_payload("ntd-state", base_url=world.url("art"))
    spec = JobSpec(
        ntd_transaction_id="ntd-state",
        no_transaction_id=payload["no_transaction_id"],
        country=payload["country"],
        channel=payload["channel"],
        label=payload["label"],
        category=payload["category"],
        zip_art=payload["zip_art"],
        arts_path=tuple(payload["arts_path"]),
    )
    store = StateStore(state_dir)
    store.open()
    accepted = JobRecord(spec=spec, state=JobState.ACCEPTED, via="http", accepted_at=time.time())
    await store.save(AgentRecord(job=accepted))
    await store.save(AgentRecord(job=accepted))  # the first becomes state.json.prev
    (state_dir / STATE_FILE).write_text('{"version": 1, "job": "x"}', encoding="utf-8")
    agent = AgentProcess(world.agent_env(state_dir))
    try:
        await agent.start()
        await world.saturno.wait_for("register", count=1, timeout=BOOT_TIMEOUT)
        (end,) = await world.saturno.wait_for("done", count=1, timeout=JOB_TIMEOUT)
        code = await agent.wait(JOB_TIMEOUT)
    finally:
        await agent.close()
        await world.close()
    assert end.body["status"] == "done", end.body
    assert end.body["ntd_transaction_id"] == "ntd-state"
    assert code == 0, agent.stderr
    assert (state_dir / f"{STATE_FILE}.corrupt").exists()
