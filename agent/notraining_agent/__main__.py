"""``python -m notraining_agent`` is ``notraining-agent``."""

import sys

from notraining_agent.cli.main import main

sys.exit(main())
