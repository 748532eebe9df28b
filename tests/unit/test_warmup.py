"""The warm-up before the job: the job's modules loaded, nothing written, nothing logged."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

SCRIPT = """
import logging, sys
from notraining_agent import logs
from notraining_agent.config import Secret, Settings
from notraining_agent.http.auth import Authenticator
from notraining_agent.life.warmup import JOB_MODULE, prepare_for_job
logs.setup(logging.DEBUG)
assert JOB_MODULE not in sys.modules, "the job's modules were loaded before the warm-up"
settings = Settings(auth_mode="jwt", jwt_secret=Secret("k7Qy2v9Lr0XwTz4NcM8bHs1JdF6gPa3E-test"))
prepare_for_job(Authenticator(settings), frozenset(), frozenset({"metadata.test"}))
assert JOB_MODULE in sys.modules, "the warm-up did not load the job's modules"
"""


def test_it_loads_the_job_modules_and_writes_and_logs_nothing(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-c", SCRIPT], cwd=tmp_path, capture_output=True, text=True, check=False
    )
    assert done.returncode == 0, done.stderr
    assert (done.stdout, done.stderr) == ("", "")
    assert list(tmp_path.iterdir()) == []
