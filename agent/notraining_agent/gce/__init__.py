"""What the VM knows about itself, and the Google services it reaches from inside.

``InstanceInfo`` lives here because both sources of it share it: the metadata
server (``gce.metadata``) and local mode (``gce.local``). Submodules
are imported by their users, so importing this package stays free of google-auth.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType


def _empty() -> Mapping[str, str]:
    return MappingProxyType({})


@dataclass(frozen=True)
class InstanceInfo:
    """The instance as read once at boot; mappings are read-only views."""

    name: str
    instance_id: str | None
    project: str | None
    zone: str | None
    """Short zone name (``us-east1-b``), as the Compute API and the reports want it."""
    internal_ip: str
    external_ip: str | None
    hostname: str = ""
    instance_attributes: Mapping[str, str] = field(default_factory=_empty)
    project_attributes: Mapping[str, str] = field(default_factory=_empty)
    service_account_email: str | None = None
    scopes: tuple[str, ...] = ()
    preempted: bool = False
    on_gce: bool = True
    """False in local mode: nothing answered as a metadata server."""

    @property
    def ip(self) -> str:
        """The address Saturno should call: the external one when the VM has one."""
        return self.external_ip or self.internal_ip
