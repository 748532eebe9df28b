"""The metadata server's recursive JSON document turned into an :class:`InstanceInfo`.

Kept apart from :mod:`notraining_agent.gce.metadata` (the client) because it is pure: it reads a
parsed document, never the network, and is tested on hand-written documents.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping
from types import MappingProxyType

from notraining_agent.errors import MetadataError
from notraining_agent.gce import InstanceInfo

# The client's logger: this parsing was part of notraining_agent.gce.metadata, and the "logger"
# field of its lines in Cloud Logging stays what operators already filter on.
log = logging.getLogger("notraining_agent.gce.metadata")

_ZONE = re.compile(r"(?:projects/[^/]+/zones/)?([a-z][a-z0-9]*(?:-[a-z0-9]+)+)")


def parse_instance(document: object, *, source: str = "the metadata server") -> InstanceInfo:
    """Turn the recursive JSON of ``/computeMetadata/v1/`` into an :class:`InstanceInfo`."""
    root = _dict(document)
    instance, project = _dict(root.get("instance")), _dict(root.get("project"))
    interfaces = instance.get("networkInterfaces")
    nic = _dict(interfaces[0]) if isinstance(interfaces, list) and interfaces else {}
    access = nic.get("accessConfigs")
    access0 = _dict(access[0]) if isinstance(access, list) and access else {}
    name, internal_ip = _text(instance.get("name")), _text(nic.get("ip"))
    if not name or not internal_ip:
        raise MetadataError(
            f"{source} gave no instance name or internal IP (instance/name, "
            "instance/network-interfaces/0/ip); check that it is a GCE metadata server."
        )
    account = _dict(_dict(instance.get("serviceAccounts")).get("default"))
    scopes = account.get("scopes")
    return InstanceInfo(
        name=name,
        instance_id=_text(instance.get("id")) or None,
        project=_text(project.get("projectId")) or None,
        zone=_short_zone(_text(instance.get("zone"))),
        internal_ip=internal_ip,
        external_ip=_text(access0.get("externalIp")) or None,
        hostname=_text(instance.get("hostname")) or name,
        instance_attributes=_attributes(instance.get("attributes")),
        project_attributes=_attributes(project.get("attributes")),
        service_account_email=_text(account.get("email")) or None,
        scopes=tuple(_text(s) for s in scopes) if isinstance(scopes, list) else (),
        preempted=_text(instance.get("preempted")).upper() == "TRUE",
        on_gce=True,
    )


def _short_zone(value: str) -> str | None:
    """``projects/N/zones/us-east1-b`` → ``us-east1-b``; anything else → None, with a warning."""
    if not value:
        return None
    match = _ZONE.fullmatch(value)
    if match is None:
        log.warning(
            "Metadata zone %r is not projects/N/zones/ZONE; continuing without a zone", value
        )
        return None
    return match.group(1)


def _dict(value: object) -> dict[str, object]:
    return value if isinstance(value, dict) else {}


def _text(value: object) -> str:
    return str(value) if isinstance(value, str | int) and not isinstance(value, bool) else ""


def _attributes(value: object) -> Mapping[str, str]:
    return MappingProxyType({str(k): _text(v) for k, v in _dict(value).items()})
