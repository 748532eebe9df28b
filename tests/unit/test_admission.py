"""Admission on headers alone: auth first, then content type, then size; decided once.

The HTTP-level answers (401, 413, 415, 408, 100-continue) are in test_receiver.py and
tests/security; these call the module on aiohttp's own request objects.
"""

from __future__ import annotations

import logging

import pytest
from aiohttp import web
from aiohttp.test_utils import make_mocked_request
from notraining_agent.config import Secret, Settings
from notraining_agent.http.admission import (
    AUTHENTICATOR,
    SETTINGS,
    refuse_before_reading,
)
from notraining_agent.http.auth import Authenticator

TOKEN = "Hq3Lx8Vz1Rt6Yw0Pn5Mc2Kb7Jf4Gd9Sa-static"
LIMIT = 4096


def request(headers: dict[str, str]) -> web.Request:
    settings = Settings(auth_mode="static", token=Secret(TOKEN), max_body_bytes=LIMIT)
    app = web.Application()
    app[AUTHENTICATOR] = Authenticator(settings)
    app[SETTINGS] = settings
    return make_mocked_request("POST", "/receiver_no_training/", headers=headers, app=app)


JSON = {"Content-Type": "application/json"}
HUGE = {"Content-Length": str(LIMIT + 1)}


@pytest.mark.parametrize(
    ("headers", "status"),
    [
        ({"Content-Type": "text/plain", **HUGE}, 401),  # no token: nothing else is told
        ({"Authorization": TOKEN, "Content-Type": "text/plain", **HUGE}, 415),
        ({"Authorization": TOKEN, **JSON, **HUGE}, 413),
    ],
)
def test_auth_then_type_then_size(headers: dict[str, str], status: int) -> None:
    refusal = refuse_before_reading(request(headers))
    assert refusal is not None
    assert refusal.status == status


def test_a_request_that_passes_is_not_refused() -> None:
    assert refuse_before_reading(request({"Authorization": TOKEN, **JSON})) is None


def test_the_decision_is_made_once_per_request(caplog: pytest.LogCaptureFixture) -> None:
    """The 100-continue handler decides first; the handler reuses it (one refusal line)."""
    caplog.set_level(logging.INFO)
    refused = request({"Authorization": "wrong", **JSON})
    first = refuse_before_reading(refused)
    assert refuse_before_reading(refused) is first
    assert [r.getMessage() for r in caplog.records] == ["refused a request: wrong token"]
