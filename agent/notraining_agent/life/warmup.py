"""Ready the job's path while the VM waits for its one job (issue 12).

Saturno posts one job per VM, so accepting it is always the process's first run of
that code, and the POST waited for what a first run costs: the job's modules were
imported then, CPython runs a function's bytecode unspecialised (slower) until it has
run a few times, and yarl's and re's caches start empty. Once the boot report is out,
the daemon calls :func:`prepare_for_job` in a thread: it imports the job's modules,
verifies a throwaway token (see :meth:`Authenticator.rehearse`) and accepts a sample job
a few times on paper (decoded, parsed with the SSRF rules, its state record encoded),
writing nothing and logging nothing.
"""

from __future__ import annotations

import importlib
import json

from notraining_agent.http.auth import Authenticator
from notraining_agent.job.payload import JSON, decode_body
from notraining_agent.job.spec import parse_job
from notraining_agent.life.states import JobState
from notraining_agent.life.store import AgentRecord, JobRecord, encode

JOB_MODULE = "notraining_agent.job.runner"
REHEARSALS = 3
"""Enough runs for the interpreter to specialise the per-URL checks; each takes ~0.5 ms."""
_SAMPLE_ARTS = 50
_SAMPLE = json.dumps(
    {
        "ntd_transaction_id": "warm-up",
        "no_transaction_id": "warm-up",
        "country": "PE",
        "channel": "channel",
        "label": "label",
        "category": "POP",
        "zip_art": "https://files.example.invalid/arts.zip",
        "arts_path": [f"https://files.example.invalid/art-{i}.jpg" for i in range(_SAMPLE_ARTS)],
    }
).encode()


def prepare_for_job(
    authenticator: Authenticator, allowed_hosts: frozenset[str], metadata_hosts: frozenset[str]
) -> None:
    """Import the job's modules and rehearse accepting a job; blocks, so call it in a thread."""
    importlib.import_module(JOB_MODULE)
    for _ in range(REHEARSALS):
        authenticator.rehearse()
        spec = parse_job(
            decode_body(JSON, _SAMPLE), allowed_hosts=allowed_hosts, metadata_hosts=metadata_hosts
        )
        encode(
            AgentRecord(
                job=JobRecord(spec=spec, state=JobState.ACCEPTED, via="http", accepted_at=0.0)
            )
        )
