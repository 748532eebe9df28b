"""The URL guard: static refusals in every spelling, and the connect-time resolver check."""

from __future__ import annotations

import ipaddress
import socket

import pytest
from aiohttp.abc import AbstractResolver, ResolveResult
from hypothesis import given, settings
from hypothesis import strategies as st
from notraining_agent.job.addresses import address_refusal
from notraining_agent.job.urlguard import (
    AddressRefusedError,
    GuardedResolver,
    is_allowed,
    metadata_hosts_from_env,
    static_refusal,
)

NONE: frozenset[str] = frozenset()
META = frozenset({"127.0.0.1:8089"})  # what GCE_METADATA_HOST names in tests


def refusal(url: str, allowed: frozenset[str] = NONE) -> str | None:
    return static_refusal(url, allowed_hosts=allowed, metadata_hosts=META)


class FakeResolver(AbstractResolver):
    """Answers every name with fixed addresses, like a hostile DNS server would."""

    def __init__(self, *addresses: str) -> None:
        self.addresses = addresses
        self.calls = 0

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        self.calls += 1
        return [
            ResolveResult(hostname=host, host=a, port=port, family=family, proto=0, flags=0)
            for a in self.addresses
        ]

    async def close(self) -> None:
        return None


@pytest.mark.parametrize(
    "url",
    [
        "http://2130706433/",
        "http://0177.0.0.1/",
        "http://0x7f000001/",
        "http://0x7f.1/",
        "http://127.1/",
        "http://017700000001/",
        "http://3232235777/",
        "http://[::ffff:7f00:1]/",
        "http://[0:0:0:0:0:ffff:127.0.0.1]/",
        "http://169.254.169.254/",
        "http://[fd20:ce::254]/",
        "http://metadata.google.internal./",
        "http://x.metadata.google.internal/",
        "http://127.0.0.1:8089/",
    ],
)
def test_static_spellings_refused(url: str) -> None:
    """Decimal, octal, hex, short, mapped and metadata spellings are refused without DNS."""
    assert refusal(url) is not None
    # even when the literal is allowed, the legacy spellings and metadata stay refused
    assert refusal(
        url, frozenset({"127.0.0.1", "169.254.169.254", "::ffff:7f00:1"})
    ) is not None or ("ffff" in url)


def test_allowed_entries() -> None:
    """host matches any port, host:port one port, [v6]:port and bare v6 entries work."""
    assert is_allowed("localhost", 8080, frozenset({"localhost"}))
    assert is_allowed("LOCALHOST.", 8080, frozenset({"localhost:8080"}))
    assert not is_allowed("localhost", 9, frozenset({"localhost:8080"}))
    assert is_allowed("::1", 80, frozenset({"[::1]:80"}))
    assert is_allowed("0:0::1", 81, frozenset({"::1"}))
    assert refusal("http://127.0.0.1:8080/", frozenset({"127.0.0.1:8080"})) is None
    assert refusal("http://[::1]:8080/", frozenset({"[::1]:8080"})) is None
    assert refusal("http://127.0.0.1:8081/", frozenset({"127.0.0.1:8080"})) is not None
    assert refusal("https://127.0.0.1/", frozenset({"127.0.0.1:443"})) is None


def test_gs_urls() -> None:
    """gs:// needs a bucket and an object, and is not subject to address rules."""
    assert refusal("gs://bucket-1/a/b.png") is None
    assert refusal("gs://bucket-1/") is not None
    assert refusal("gs://B!/x") is not None
    assert refusal("gs://bucket-1/x?y=1") is not None


def test_metadata_hosts_from_env() -> None:
    """GCE_METADATA_HOST and GCE_METADATA_IP become guard entries; empty ones are dropped."""
    assert metadata_hosts_from_env({"GCE_METADATA_HOST": "127.0.0.1:9", "GCE_METADATA_IP": ""}) == {
        "127.0.0.1:9"
    }


async def test_resolver_refuses_if_any_address_is_private() -> None:
    """One private address among public ones is enough to refuse the name."""
    guard = GuardedResolver(
        allowed_hosts=NONE, metadata_hosts=META, inner=FakeResolver("8.8.8.8", "10.0.0.1")
    )
    with pytest.raises(AddressRefusedError, match=r"10\.0\.0\.1"):
        await guard.resolve("evil.example", 80)


async def test_resolver_allows_listed_host_and_public_names() -> None:
    """A listed host:port may resolve to loopback; a public answer passes for anyone."""
    inner = FakeResolver("127.0.0.1")
    guard = GuardedResolver(
        allowed_hosts=frozenset({"arts.internal:8080"}), metadata_hosts=META, inner=inner
    )
    assert (await guard.resolve("arts.internal", 8080))[0]["host"] == "127.0.0.1"
    with pytest.raises(AddressRefusedError):
        await guard.resolve("arts.internal", 8081)
    public = GuardedResolver(allowed_hosts=NONE, metadata_hosts=META, inner=FakeResolver("1.1.1.1"))
    assert len(await public.resolve("ok.example", 443)) == 1


async def test_resolver_refuses_metadata_always() -> None:
    """The metadata address (built-in or GCE_METADATA_HOST) is refused even when allowed."""
    allowed = frozenset({"evil.example", "localhost"})
    guard = GuardedResolver(
        allowed_hosts=allowed, metadata_hosts=META, inner=FakeResolver("169.254.169.254")
    )
    with pytest.raises(AddressRefusedError, match="metadata"):
        await guard.resolve("evil.example", 80)
    inner = FakeResolver("127.0.0.1")
    emulator = GuardedResolver(allowed_hosts=allowed, metadata_hosts=META, inner=inner)
    with pytest.raises(AddressRefusedError, match="metadata"):
        await emulator.resolve("localhost", 8089)
    assert await emulator.resolve("localhost", 8090)
    named = GuardedResolver(allowed_hosts=allowed, metadata_hosts=META, inner=inner)
    with pytest.raises(AddressRefusedError):
        await named.resolve("metadata.google.internal", 80)
    assert inner.calls == 2  # the metadata name was refused before any lookup


async def test_resolver_with_real_dns_for_localhost() -> None:
    """localhost resolves through the real default resolver and is refused unless listed."""
    guard = GuardedResolver(allowed_hosts=NONE, metadata_hosts=META)
    with pytest.raises(AddressRefusedError, match="loopback"):
        await guard.resolve("localhost", 80, socket.AF_INET)
    await guard.close()


_private_v4 = st.ip_addresses(v=4).filter(lambda a: address_refusal(a) is not None)
_private_v6 = st.ip_addresses(v=6).filter(lambda a: address_refusal(a) is not None)


@settings(max_examples=400)
@given(_private_v4, st.integers(min_value=0, max_value=4))
def test_never_allows_a_private_v4_literal(address: ipaddress.IPv4Address, spelling: int) -> None:
    """Property: a non-public IPv4 address is refused in every spelling."""
    number = int(address)
    forms = [
        str(address),
        str(number),
        "0" + oct(number)[2:],
        hex(number),
        f"[::ffff:{address}]",
    ]
    assert refusal(f"http://{forms[spelling]}/x") is not None


@settings(max_examples=300)
@given(_private_v6)
def test_never_allows_a_private_v6_literal(address: ipaddress.IPv6Address) -> None:
    """Property: a non-public IPv6 address is refused."""
    assert refusal(f"http://[{address}]/x") is not None


@settings(max_examples=300)
@given(st.one_of(_private_v4, _private_v6), st.integers(min_value=1, max_value=65535))
async def test_resolver_never_allows_private_answers(
    address: ipaddress.IPv4Address | ipaddress.IPv6Address, port: int
) -> None:
    """Property: a name whose DNS answer is not public is refused unless listed."""
    guard = GuardedResolver(
        allowed_hosts=frozenset({"trusted.example"}),
        metadata_hosts=NONE,
        inner=FakeResolver(str(address)),
    )
    with pytest.raises(AddressRefusedError):
        await guard.resolve("evil.example", port)
    if address not in {
        ipaddress.ip_address("169.254.169.254"),
        ipaddress.ip_address("fd20:ce::254"),
    }:
        assert await guard.resolve("trusted.example", port)
