"""The parsed job of the last body that was accepted or recognised, for its re-posts.

Saturno re-posts a job it is unsure was taken (contract section 4). Decoding and
validating the body again (51 URLs through the SSRF guard's static checks) was a third
of a re-post's CPU (issue 12). The same bytes under the same ``Content-Type`` always
parse to the same spec (the allowed hosts are fixed for the process), so the spec is
kept and a byte-for-byte equal body skips straight to the desk, which still decides.
Auth, the size limits and the body's read are unchanged. One entry, at most
``max_body_bytes``.
"""

from __future__ import annotations

from notraining_agent.job.spec import JobSpec


class RepostMemo:
    """Remembers one (content type, body) and the spec it parsed to."""

    def __init__(self) -> None:
        self._key: tuple[str, bytes] | None = None
        self._spec: JobSpec | None = None

    def recall(self, content_type: str, body: bytes) -> JobSpec | None:
        """The spec of an identical earlier body, or None."""
        if self._key is not None and self._key == (content_type, body):
            return self._spec
        return None

    def remember(self, content_type: str, body: bytes, spec: JobSpec) -> None:
        """Keep ``spec`` for re-posts of exactly this body."""
        self._key, self._spec = (content_type, body), spec
