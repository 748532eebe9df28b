"""The bodies of the boot and end reports (contract section 3), built from plain values."""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from typing import Any

from notraining_agent.gce import InstanceInfo
from notraining_agent.life.store import JobRecord, Report, ReportKind
from notraining_agent.logs import utc_iso


def new_report(kind: ReportKind, url: str, body: dict[str, Any], now: float) -> Report:
    """A pending report with a fresh Idempotency-Key that every retry will reuse."""
    return Report(kind=kind, url=url, body=body, key=str(uuid.uuid4()), created_at=now)


def boot_body(
    instance: InstanceInfo,
    *,
    boot_id: str,
    port: int,
    agent_version: str,
    can_self_stop: bool | None,
    identity_token: str | None = None,
) -> dict[str, Any]:
    """Where the VM is and how to reach it; ``ip`` is the external IP when there is one."""
    body: dict[str, Any] = {
        "ip": instance.ip,
        "name": instance.name,
        "internal_ip": instance.internal_ip,
        "external_ip": instance.external_ip,
        "zone": instance.zone,
        "project": instance.project,
        "instance_id": instance.instance_id,
        "boot_id": boot_id,
        "port": port,
        "agent_version": agent_version,
        "can_self_stop": can_self_stop,
    }
    if identity_token is not None:
        body["identity_token"] = identity_token
    return body


def end_body_for_job(job: JobRecord, *, name: str) -> dict[str, Any]:
    """How a job ended; ``arts`` is how many arts it processed."""
    body: dict[str, Any] = {
        "ntd_transaction_id": job.spec.ntd_transaction_id,
        "no_transaction_id": job.spec.no_transaction_id,
        "status": job.state.value,
        "error": job.error,
        "name": name,
        "started_at": utc_iso(job.started_at) if job.started_at is not None else None,
        "finished_at": utc_iso(job.finished_at) if job.finished_at is not None else None,
        "arts": job.arts,
        "output_uri": job.output_uri,
    }
    if job.warnings:
        body["warnings"] = list(job.warnings)
    return body


def end_body_without_job(
    status: str, error: str, *, name: str, since: float, now: float
) -> dict[str, Any]:
    """The end of a VM that took no job (``idle_timeout``, or ``preempted`` while idle)."""
    return {
        "ntd_transaction_id": None,
        "no_transaction_id": None,
        "status": status,
        "error": error,
        "name": name,
        "started_at": utc_iso(since),
        "finished_at": utc_iso(now),
        "arts": 0,
        "output_uri": None,
    }


def summary(report: Report | None) -> Mapping[str, Any] | None:
    """A report as ``/status`` shows it: kind, outcome, attempts; never the body."""
    if report is None:
        return None
    return {"kind": report.kind, "outcome": report.outcome, "attempts": report.attempts}
