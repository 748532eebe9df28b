"""aiohttp imported with its CA loading in a thread: the contexts end up as usual (issue 12)."""

from __future__ import annotations

import json
import subprocess
import sys

_CHILD = """
import asyncio, json, ssl, sys
from notraining_agent.util import tlsdefer
tlsdefer.import_aiohttp()
import aiohttp.connector
asyncio.run(tlsdefer.cas_loaded())
contexts = [v for v in vars(aiohttp.connector).values() if isinstance(v, ssl.SSLContext)]
verifying = [c for c in contexts if c.verify_mode != ssl.CERT_NONE]
print(json.dumps({
    "verifying": [c.cert_store_stats()["x509_ca"] for c in verifying],
    "usual": ssl.create_default_context().cert_store_stats()["x509_ca"],
}))
"""


def test_aiohttp_verifying_contexts_get_the_system_cas() -> None:
    """After cas_loaded(), each verifying context holds what create_default_context loads.

    A fresh interpreter: this test process imported aiohttp the usual way long ago. The
    last context is made after the import: set_default_verify_paths is itself again.
    """
    done = subprocess.run(
        [sys.executable, "-c", _CHILD], capture_output=True, text=True, check=True, timeout=60
    )
    found = json.loads(done.stdout)
    assert found["usual"] > 0
    assert found["verifying"] and all(count == found["usual"] for count in found["verifying"])


async def test_a_second_import_changes_nothing() -> None:
    """aiohttp already imported: nothing is deferred, nothing to wait for.

    A coroutine on the test's own loop, not asyncio.run(): under the lowest pytest-asyncio
    (0.24) asyncio.run() dropped the loop the plugin keeps current, unclosed, and its
    ResourceWarning failed whichever test ran when it was collected.
    """
    import aiohttp  # noqa: F401, PLC0415
    from notraining_agent.util import tlsdefer  # noqa: PLC0415

    tlsdefer.import_aiohttp()
    await tlsdefer.cas_loaded()
