"""The one place that decides whether a job URL, host or address may be fetched (contract 5).

Two checks share the rules below:

- :func:`static_refusal` runs without DNS, when the job is posted and again before
  every download hop: scheme, credentials, literal addresses in any spelling
  (``2130706433``, ``0177.0.0.1``, ``0x7f.1``, ``[::ffff:127.0.0.1]``) and
  metadata host names.
- :class:`GuardedResolver` runs at connect time inside the download session's
  ``TCPConnector``: it resolves a name once and refuses when *any* address is
  forbidden, so the address aiohttp connects to is the one that was checked
  (no second lookup an attacker's DNS could answer differently).

``allowed_hosts`` holds ``host`` (any port) or ``host:port`` entries that may name
private, loopback or link-local addresses. The metadata server is refused always,
even when allowed: it hands out the VM's service-account token.
"""

from __future__ import annotations

import asyncio
import functools
import ipaddress
import re
import socket
from collections.abc import Mapping
from typing import TYPE_CHECKING

from aiohttp.abc import AbstractResolver, ResolveResult
from aiohttp.resolver import DefaultResolver
from yarl import URL

from notraining_agent.errors import InputRefusedError
from notraining_agent.job.addresses import (
    address_refusal,
    carried_ipv4,
    legacy_ipv4,
    normalise_host,
    parse_literal,
)

if TYPE_CHECKING:
    from notraining_agent.job.addresses import IPAddress

SCHEMES = frozenset({"http", "https", "gs"})
FETCH_SCHEMES = frozenset({"http", "https"})
METADATA_NAMES = frozenset({"metadata.google.internal", "metadata"})
METADATA_ADDRESSES = frozenset(
    {ipaddress.ip_address("169.254.169.254"), ipaddress.ip_address("fd20:ce::254")}
)
DEFAULT_PORTS = {"http": 80, "https": 443}
DEFAULT_RESOLVE_TIMEOUT = 10.0
_NAME = re.compile(r"^[a-z0-9_]([a-z0-9_-]*[a-z0-9_])?(\.[a-z0-9_]([a-z0-9_-]*[a-z0-9_])?)*$")
_UNSAFE_CHARS = re.compile(r"[\s\x00-\x1f\x7f]")  # \s is str.isspace(): one pass, in C
_GS_BUCKET = re.compile(r"^[a-z0-9][a-z0-9._-]{1,220}[a-z0-9]$")


class AddressRefusedError(InputRefusedError):
    """A host resolved to an address the guard refuses; raised inside the connector."""


def metadata_hosts_from_env(environ: Mapping[str, str]) -> frozenset[str]:
    """``GCE_METADATA_HOST`` and ``GCE_METADATA_IP`` as guard entries; call it at start."""
    found = {
        environ.get(key, "").strip().lower() for key in ("GCE_METADATA_HOST", "GCE_METADATA_IP")
    }
    found.discard("")
    return frozenset(found)


def _split_entry(entry: str) -> tuple[str, int | None]:
    """``host``, ``host:port``, ``[v6]:port`` or a bare IPv6 address -> (host, port)."""
    entry = entry.strip().lower()
    if entry.startswith("["):
        host, _, rest = entry[1:].partition("]")
        port = rest[1:] if rest.startswith(":") else ""
    elif entry.count(":") == 1:
        host, _, port = entry.partition(":")
    else:
        host, port = entry, ""
    host = normalise_host(host)
    literal = parse_literal(host)
    if literal is not None:
        host = str(literal)
    return host, int(port) if port.isdigit() else None


def _entry_matches(entries: frozenset[str], host: str, port: int) -> bool:
    literal = parse_literal(host)
    key = str(literal) if literal is not None else host
    for entry in entries:
        entry_host, entry_port = _split_entry(entry)
        if entry_host == key and entry_port in (None, port):
            return True
    return False


def is_allowed(host: str, port: int, allowed_hosts: frozenset[str]) -> bool:
    """Whether ``host:port`` is listed in ``allowed_url_hosts`` (a bare host allows any port)."""
    return _entry_matches(allowed_hosts, normalise_host(host), port)


def metadata_refusal(
    host: str, port: int, metadata_hosts: frozenset[str], address: IPAddress | None = None
) -> str | None:
    """Why ``host`` (or the address it resolved to) is the metadata server, or None."""
    name = normalise_host(host)
    if name in METADATA_NAMES or name.endswith(".metadata.google.internal"):
        return f"{name} is the GCE metadata server"
    candidates = [name] if address is None else [name, str(address)]
    # ::ffff:169.254.169.254 reaches the IPv4 server through a dual-stack socket, so an
    # IPv6 spelling that carries an IPv4 address is compared as that IPv4 address too.
    candidates += [str(v4) for v4 in map(carried_ipv4, candidates) if v4 is not None]
    for candidate in candidates:
        literal = parse_literal(candidate)
        if literal is not None and literal in METADATA_ADDRESSES:
            return f"{literal} is the GCE metadata server"
        if _entry_matches(metadata_hosts, candidate, port):
            return f"{candidate} is the metadata server (GCE_METADATA_HOST)"
    return None


def static_refusal(  # noqa: PLR0911 - a guard reads best as a list of early refusals
    url: str, *, allowed_hosts: frozenset[str], metadata_hosts: frozenset[str]
) -> str | None:
    """Why ``url`` is refused before any DNS lookup, or None when it may be tried."""
    if _UNSAFE_CHARS.search(url):
        return "it contains spaces or control characters"
    try:
        parsed = URL(url)
    except (ValueError, TypeError) as exc:
        return f"it is not a valid URL ({exc})"
    scheme = parsed.scheme.lower()
    if scheme not in SCHEMES:
        return f"scheme {scheme or '(none)'!r} is not allowed; use http, https or gs"
    if parsed.raw_user is not None or parsed.raw_password is not None:
        return "it carries credentials (user:password@); pass them another way"
    raw_host = parsed.raw_host or ""
    if not raw_host:
        return "it has no host"
    if scheme == "gs":
        return _gs_refusal(parsed)
    return host_refusal(
        raw_host,
        parsed.port or DEFAULT_PORTS[scheme],
        allowed_hosts=allowed_hosts,
        metadata_hosts=metadata_hosts,
    )


def _gs_refusal(parsed: URL) -> str | None:
    if not _GS_BUCKET.match(parsed.raw_host or "") or parsed.explicit_port is not None:
        return "gs:// needs a valid bucket name (gs://bucket/object)"
    if parsed.path in ("", "/"):
        return "gs:// needs an object name (gs://bucket/object)"
    if parsed.raw_query_string or parsed.raw_fragment:
        return "gs:// URLs take no query or fragment"
    return None


@functools.lru_cache(maxsize=256)
def host_refusal(  # noqa: PLR0911 - a guard reads best as a list of early refusals
    raw_host: str, port: int, *, allowed_hosts: frozenset[str], metadata_hosts: frozenset[str]
) -> str | None:
    """The static rules for one host (as a URL spells it) and port.

    A pure function of its arguments (no DNS), so it is memoised: a job's 50 URLs on
    one host, and every re-post of the job, cost one check, not 50 (issue 12).
    """
    host = normalise_host(raw_host)
    refused = metadata_refusal(host, port, metadata_hosts)
    if refused:
        return refused
    literal = parse_literal(host)
    if literal is None and ":" not in host:
        legacy = legacy_ipv4(host)
        if legacy is not None:
            return (
                f"host {host!r} spells the address {legacy} in a legacy numeric form; "
                "write addresses as dotted quads"
            )
        if not _NAME.match(host):
            return f"host {host!r} is not a valid host name"
        return None
    if literal is None:
        return f"host {host!r} is not a valid address"
    reason = address_refusal(literal)
    if reason and not is_allowed(host, port, allowed_hosts):
        return f"{literal} is {reason}; list {_shown(host, port)} in allowed_url_hosts to trust it"
    return None


def _shown(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


class GuardedResolver(AbstractResolver):
    """Resolve once, then refuse if any address is forbidden for the requested host:port.

    aiohttp hands literal addresses straight to the socket without calling the
    resolver, so :func:`static_refusal` must run before each request too; the
    fetcher does that for every redirect hop.
    """

    def __init__(
        self,
        *,
        allowed_hosts: frozenset[str],
        metadata_hosts: frozenset[str],
        inner: AbstractResolver | None = None,
        timeout: float = DEFAULT_RESOLVE_TIMEOUT,
    ) -> None:
        self._allowed = allowed_hosts
        self._metadata = metadata_hosts
        self._inner = inner
        self._timeout = timeout

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        """Addresses for ``host``; AddressRefusedError when one of them is forbidden."""
        refused = metadata_refusal(host, port, self._metadata)
        if refused:
            raise AddressRefusedError(f"host {host} was refused: {refused}")
        if self._inner is None:
            self._inner = DefaultResolver()
        async with asyncio.timeout(self._timeout):
            results = await self._inner.resolve(host, port, family)
        for result in results:
            self.check_address(host, port, result["host"])
        return results

    def check_address(self, host: str, port: int, address_text: str) -> None:
        """Raise AddressRefusedError when ``host:port`` may not reach ``address_text``."""
        address = parse_literal(address_text.split("%", 1)[0])
        if address is None:
            raise AddressRefusedError(
                f"host {host} resolved to {address_text!r}, which is not an address"
            )
        refused = metadata_refusal(host, port, self._metadata, address)
        if refused:
            raise AddressRefusedError(f"host {host} was refused: {refused}")
        reason = address_refusal(address)
        if reason and not is_allowed(host, port, self._allowed):
            raise AddressRefusedError(
                f"host {host} resolves to {address}, {reason}; list "
                f"{_shown(normalise_host(host), port)} in allowed_url_hosts if it is trusted"
            )

    async def close(self) -> None:
        """Close the wrapped resolver."""
        if self._inner is not None:
            await self._inner.close()
