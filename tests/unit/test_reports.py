"""Boot and end report bodies, field by field as contract section 3 has them."""

from __future__ import annotations

import json
import uuid
from typing import Any

from notraining_agent.life.reports import (
    boot_body,
    end_body_for_job,
    end_body_without_job,
    new_report,
    summary,
)
from notraining_agent.life.states import JobState
from notraining_agent.life.store import JobRecord, Report

from tests.fakes import T0, instance, job_spec

BOOT_KEYS = {
    "ip",
    "name",
    "internal_ip",
    "external_ip",
    "zone",
    "project",
    "instance_id",
    "boot_id",
    "port",
    "agent_version",
    "can_self_stop",
}
END_KEYS = {
    "ntd_transaction_id",
    "no_transaction_id",
    "status",
    "error",
    "name",
    "started_at",
    "finished_at",
    "arts",
    "output_uri",
}


def job(**overrides: Any) -> JobRecord:
    spec = job_spec(label="l", zip_art="https://art.test/p.zip")
    values: dict[str, Any] = {
        "spec": spec,
        "state": JobState.DONE,
        "via": "http",
        "accepted_at": T0,
        "attempts": 1,
        "started_at": T0 + 1,
        "finished_at": T0 + 61.5,
        "arts": 7,
        "output_uri": "gs://bucket/results/ntd-1",
    }
    values.update(overrides)
    return JobRecord(**values)


def boot(**overrides: Any) -> dict[str, Any]:
    return boot_body(
        instance(**overrides),
        boot_id="b-1",
        port=8080,
        agent_version="1.2.3",
        can_self_stop=True,
    )


def test_boot_body_fields_and_types() -> None:
    """The boot report has exactly the contract's fields, with its types."""
    body = boot()
    assert set(body) == BOOT_KEYS
    assert body == {
        "ip": "203.0.113.10",
        "name": "vm-1",
        "internal_ip": "10.142.0.2",
        "external_ip": "203.0.113.10",
        "zone": "us-east1-b",
        "project": "proj-1",
        "instance_id": "4518373217654321234",
        "boot_id": "b-1",
        "port": 8080,
        "agent_version": "1.2.3",
        "can_self_stop": True,
    }
    assert type(body["port"]) is int
    assert isinstance(body["instance_id"], str)
    assert isinstance(body["can_self_stop"], bool)
    json.dumps(body)


def test_boot_ip_is_internal_without_external() -> None:
    """Without an external IP, ``ip`` is the internal one and external_ip is null."""
    body = boot(external_ip=None)
    assert body["ip"] == "10.142.0.2"
    assert body["external_ip"] is None


def test_boot_identity_token_only_when_given() -> None:
    """identity_token is added only when an identity_audience produced one."""
    assert "identity_token" not in boot()
    body = boot_body(
        instance(),
        boot_id="b",
        port=80,
        agent_version="1",
        can_self_stop=False,
        identity_token="eyJ.id.tok",
    )
    assert body["identity_token"] == "eyJ.id.tok"
    assert body["can_self_stop"] is False


def test_end_body_for_a_job() -> None:
    """A finished job's end report names it, its status, times in UTC ISO, arts and output."""
    body = end_body_for_job(job(), name="vm-1")
    assert set(body) == END_KEYS
    assert body == {
        "ntd_transaction_id": "ntd-1",
        "no_transaction_id": "no-1",
        "status": "done",
        "error": None,
        "name": "vm-1",
        "started_at": "2023-11-14T22:13:21.000Z",
        "finished_at": "2023-11-14T22:14:21.500Z",
        "arts": 7,
        "output_uri": "gs://bucket/results/ntd-1",
    }
    assert type(body["arts"]) is int


def test_end_body_for_a_failed_job_that_never_started() -> None:
    """A job that failed before starting has its error and null times and output."""
    body = end_body_for_job(
        job(
            state=JobState.FAILED,
            error="the job was started 3 times",
            started_at=None,
            finished_at=None,
            arts=0,
            output_uri=None,
        ),
        name="vm-1",
    )
    assert body["status"] == "failed"
    assert body["error"] == "the job was started 3 times"
    assert body["started_at"] is None
    assert body["finished_at"] is None
    assert body["output_uri"] is None


def test_warnings_only_when_present() -> None:
    """A processor's warnings are added to the end report only when there are some."""
    assert "warnings" not in end_body_for_job(job(), name="vm-1")
    body = end_body_for_job(job(warnings=["a.png only in zip"]), name="vm-1")
    assert body["warnings"] == ["a.png only in zip"]


def test_end_body_without_a_job() -> None:
    """idle_timeout (and preempted while idle) report null ids, 0 arts and no output."""
    body = end_body_without_job(
        "idle_timeout", "no job arrived within 1800 s", name="vm-1", since=T0, now=T0 + 1800
    )
    assert set(body) == END_KEYS
    assert body == {
        "ntd_transaction_id": None,
        "no_transaction_id": None,
        "status": "idle_timeout",
        "error": "no job arrived within 1800 s",
        "name": "vm-1",
        "started_at": "2023-11-14T22:13:20.000Z",
        "finished_at": "2023-11-14T22:43:20.000Z",
        "arts": 0,
        "output_uri": None,
    }


def test_new_report_has_a_fresh_key() -> None:
    """Each new report is pending, with its own UUID Idempotency-Key."""
    a = new_report("register", "http://s.test/register/", {"x": 1}, T0)
    b = new_report("register", "http://s.test/register/", {"x": 1}, T0)
    assert a.pending
    assert a.attempts == 0
    assert a.created_at == T0
    assert a.key != b.key
    uuid.UUID(a.key)


def test_summary_hides_the_body() -> None:
    """/status shows a report's kind, outcome and attempts, never its body."""
    report = Report("done", "http://s.test/", {"secret": "x"}, "k", T0, "delivered", 2)
    assert summary(report) == {"kind": "done", "outcome": "delivered", "attempts": 2}
    assert summary(None) is None
