"""Every exception the agent raises on purpose, in one small tree.

::

    AgentError                   base; ``exit_code`` says how the process ends
     ├── ConfigError             a bad key, value or source (exit 2)
     ├── StateError              ``state_dir`` cannot be used (exit 2)
     ├── MetadataError           the metadata server did not answer usefully (exit 1)
     ├── SaturnoError            a report was refused for good (logged, never fatal)
     ├── JobError                the job ended badly; ``str()`` is the end report's ``error``
     │    ├── InputRefusedError   a field, URL, archive or file was refused (hostile or bad)
     │    │    └── InvalidJobError   the posted fields are invalid; ``errors`` names each
     │    └── ProcessorError      the processor could not finish
     └── StopError               the VM could not be stopped (exit 3)

Library errors (aiohttp, google-auth, google-api-core) are translated into these
once, at the module that talks to the library, with ``raise ... from exc``.
Every message is a sentence that tells an operator what to do next.
"""

from __future__ import annotations

EXIT_OK = 0
EXIT_UNEXPECTED = 1
EXIT_CONFIG = 2
EXIT_STOP_FAILED = 3


class AgentError(Exception):
    """Base of every error the agent raises on purpose."""

    exit_code: int = EXIT_UNEXPECTED


class ConfigError(AgentError):
    """A configuration key has a bad value; the message names the key and its source."""

    exit_code = EXIT_CONFIG


class StateError(AgentError):
    """The state directory cannot be created, written or read."""

    exit_code = EXIT_CONFIG


class MetadataError(AgentError):
    """The GCE metadata server was expected but did not answer usefully."""


class SaturnoError(AgentError):
    """Saturno refused a report for good (a final 4xx) or could not be reached in time."""


class JobError(AgentError):
    """The job could not be completed; the message becomes the end report's ``error``."""


class InputRefusedError(JobError):
    """A job input (field, URL, download or archive entry) was refused as unsafe or invalid."""


class InvalidJobError(InputRefusedError):
    """The posted job has invalid fields; the receiver answers 400 with ``errors``."""

    def __init__(self, errors: dict[str, str]) -> None:
        self.errors = dict(errors)
        super().__init__("; ".join(f"{field}: {message}" for field, message in errors.items()))


class ProcessorError(JobError):
    """The processor failed; the message says which art or stage and why."""


class StopError(AgentError):
    """Neither the Compute API nor the OS could stop the VM."""

    exit_code = EXIT_STOP_FAILED
