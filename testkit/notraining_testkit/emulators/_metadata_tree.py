"""The metadata emulator's data: the instance/project tree, its generated leaves, its forms.

Kept apart from :mod:`notraining_testkit.emulators.metadata` so the emulator reads as its HTTP
behaviour (flavor checks, watches, steering) and this module as what the tree holds.
"""

from __future__ import annotations

import enum
import hashlib
import json
import time
from collections.abc import Mapping
from typing import Protocol, TypeAlias

import jwt

VERBATIM = frozenset({"attributes", "service-accounts", "guest-attributes"})


class Endpoint(enum.Enum):
    """Leaves computed per request; listed in directories, absent from recursive JSON."""

    TOKEN = "token"
    IDENTITY = "identity"


# Directories are dicts (arrays of directories are lists); leaves are str, int or tuple.
Node: TypeAlias = "dict[str, Node] | list[Node] | tuple[str, ...] | str | int | Endpoint"


class VmFacts(Protocol):
    """What the tree is built from: the emulator's public description of its VM."""

    project_id: str
    numeric_project_id: int
    zone: str
    name: str
    instance_id: int
    machine_type: str
    internal_ip: str
    external_ip: str | None
    service_account_email: str
    service_account: bool
    scopes: tuple[str, ...]
    preemptible: bool
    instance_attributes: dict[str, str]
    project_attributes: dict[str, str]
    identity_key: bytes


def build_tree(
    vm: VmFacts,
    *,
    preempted: bool,
    maintenance_event: str,
    guest: Mapping[str, Mapping[str, str]],
) -> dict[str, Node]:
    """The whole metadata tree of ``vm`` as the server would serve it now."""
    access: list[Node] = []
    if vm.external_ip is not None:
        access.append({"external-ip": vm.external_ip, "type": "ONE_TO_ONE_NAT"})
    account: dict[str, Node] = {
        "aliases": ("default",),
        "email": vm.service_account_email,
        "scopes": vm.scopes,
        "token": Endpoint.TOKEN,
        "identity": Endpoint.IDENTITY,
    }
    accounts: dict[str, Node] = {}
    if vm.service_account:  # a VM created with --no-service-account has none
        accounts = {"default": account, vm.service_account_email: dict(account)}
    guest_tree: dict[str, Node] = {ns: dict(keys) for ns, keys in guest.items()}
    flag = "TRUE" if vm.preemptible else "FALSE"
    instance: dict[str, Node] = {
        "attributes": dict(vm.instance_attributes),
        "cpu-platform": "Intel Broadwell",
        "description": "",
        "guest-attributes": guest_tree,
        "hostname": f"{vm.name}.{vm.zone}.c.{vm.project_id}.internal",
        "id": vm.instance_id,
        "machine-type": f"projects/{vm.numeric_project_id}/machineTypes/{vm.machine_type}",
        "maintenance-event": maintenance_event,
        "name": vm.name,
        "network-interfaces": [
            {
                "access-configs": access,
                "gateway": "10.142.0.1",
                "ip": vm.internal_ip,
                "mac": "42:01:0a:8e:00:02",
                "mtu": 1460,
                "network": f"projects/{vm.numeric_project_id}/networks/default",
                "subnetmask": "255.255.240.0",
            }
        ],
        "preempted": "TRUE" if preempted else "FALSE",
        "scheduling": {
            "automatic-restart": "FALSE" if vm.preemptible else "TRUE",
            "on-host-maintenance": "TERMINATE" if vm.preemptible else "MIGRATE",
            "preemptible": flag,
        },
        "service-accounts": accounts,
        "zone": f"projects/{vm.numeric_project_id}/zones/{vm.zone}",
    }
    project: dict[str, Node] = {
        "attributes": dict(vm.project_attributes),
        "numeric-project-id": vm.numeric_project_id,
        "project-id": vm.project_id,
    }
    return {
        "instance": instance,
        "project": project,
        "universe": {"universe-domain": "googleapis.com"},
    }


def lookup(tree: Node, segments: list[str]) -> Node | None:
    """The node at ``segments`` below ``tree``, or None when the path does not exist."""
    node = tree
    for segment in segments:
        if isinstance(node, dict) and segment in node:
            node = node[segment]
        elif isinstance(node, list) and segment.isdigit() and int(segment) < len(node):
            node = node[int(segment)]
        else:
            return None
    return node


def identity_token(vm: VmFacts, audience: str, *, full: bool) -> str:
    """The ``identity`` leaf: a JWT shaped like Google's, signed with the emulator's key."""
    now = int(time.time())
    claims: dict[str, object] = {
        "aud": audience,
        "azp": "104358392739146278456",
        "email": vm.service_account_email,
        "email_verified": True,
        "exp": now + 3600,
        "iat": now,
        "iss": "https://accounts.google.com",
        "sub": "104358392739146278456",
    }
    if full:
        claims["google"] = {
            "compute_engine": {
                "instance_creation_timestamp": now - 60,
                "instance_id": str(vm.instance_id),
                "instance_name": vm.name,
                "project_id": vm.project_id,
                "project_number": vm.numeric_project_id,
                "zone": vm.zone,
            }
        }
    return jwt.encode(claims, vm.identity_key, algorithm="HS256", headers={"kid": "emulator"})


def _camel(key: str) -> str:
    head, *rest = key.split("-")
    return head + "".join(part[:1].upper() + part[1:] for part in rest)


def to_json(node: Node, verbatim: bool = False) -> object:
    """The recursive JSON form: camelCase keys except under user-named directories."""
    if isinstance(node, dict):
        return {
            (k if verbatim else _camel(k)): to_json(v, verbatim or k in VERBATIM)
            for k, v in sorted(node.items())
            if not isinstance(v, Endpoint)
        }
    if isinstance(node, list):
        return [to_json(v, verbatim) for v in node]
    if isinstance(node, tuple):
        return list(node)
    return node.value if isinstance(node, Endpoint) else node


def to_text(node: Node, prefix: str = "") -> str:
    """The ``recursive=true&alt=text`` form: one ``path value`` line per leaf value."""
    join = (prefix + "/") if prefix else ""
    if isinstance(node, dict):
        return "".join(
            to_text(v, join + k) for k, v in sorted(node.items()) if not isinstance(v, Endpoint)
        )
    if isinstance(node, list):
        return "".join(to_text(v, join + str(i)) for i, v in enumerate(node))
    if isinstance(node, tuple):
        return "".join(f"{prefix} {v}\n" for v in node)
    return f"{prefix} {node}\n"


def listing(node: Node) -> str:
    """A directory's children, one a line, sub-directories with a trailing ``/``."""
    if isinstance(node, dict):
        children = sorted(node.items())
    elif isinstance(node, list):
        children = [(str(i), v) for i, v in enumerate(node)]
    else:
        return ""
    return "".join(f"{k}/\n" if isinstance(v, dict | list) else f"{k}\n" for k, v in children)


def etag_of(data: object) -> str:
    """A short hash of a value, so the ETag changes only when the value does."""
    blob = json.dumps(data, sort_keys=True, default=str).encode()
    return hashlib.sha256(blob).hexdigest()[:16]
