"""The worker child: ``python -m notraining_agent.processors.keypoints STAGE PLAN SHARD SHARDS``.

Started by :func:`notraining_agent.processors.keypoints.worker.run_stage`, never by hand. It
reports JSON lines on stdout and exits by itself when its stdin closes, which is how
it learns that the agent died, even by SIGKILL.
"""

from __future__ import annotations

import logging
import os
import sys
import threading
from collections.abc import Sequence
from pathlib import Path

EXIT_PARENT_GONE = 70


def _exit_with_parent() -> None:
    """Exit as soon as stdin reaches EOF: the parent closed it or died."""

    def watch() -> None:
        # os.read on the raw descriptor: sys.stdin's buffered reader holds a lock that
        # a daemon thread blocked in it would keep at interpreter shutdown.
        try:
            while os.read(0, 4096):
                pass
        except OSError:
            pass
        os._exit(EXIT_PARENT_GONE)

    threading.Thread(target=watch, name="parent-watch", daemon=True).start()


def main(argv: Sequence[str] | None = None) -> int:
    """Run one stage of the keypoints processor in this process."""
    args = list(sys.argv[1:] if argv is None else argv)
    if len(args) != 4:
        sys.stderr.write(
            "usage: python -m notraining_agent.processors.keypoints STAGE PLAN SHARD SHARDS\n"
        )
        return 2
    _exit_with_parent()
    logging.basicConfig(stream=sys.stderr, level=logging.INFO)
    from notraining_agent.processors.keypoints import stages  # noqa: PLC0415 - cv2 only in the child

    stage, plan, shard, shards = args
    stages.run(stage, Path(plan), int(shard), int(shards))
    return 0


if __name__ == "__main__":
    sys.exit(main())
