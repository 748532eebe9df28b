"""``python -m agent`` is ``notraining-agent``."""

import sys

from agent.cli import main

sys.exit(main())
